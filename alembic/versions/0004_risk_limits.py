"""risk limits and kill-switch state per user

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import ats_app.engine.store.models
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('risk_limits',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('max_open_positions', sa.Integer(), nullable=True),
    sa.Column('max_lots_per_order', sa.Integer(), nullable=True),
    sa.Column('max_orders_per_day', sa.Integer(), nullable=True),
    sa.Column('daily_loss_limit_paise', sa.Integer(), nullable=True),
    sa.Column('exit_on_loss_limit', sa.Boolean(), nullable=False),
    sa.Column('square_off_at', sqlmodel.sql.sqltypes.AutoString(length=5), nullable=False),
    sa.Column('halted_at', ats_app.engine.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', ats_app.engine.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id')
    )


def downgrade() -> None:
    op.drop_table('risk_limits')
