"""alert targets (one row per alert and account) and per-account risk limits

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import ats_app.engine.store.models
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('alert_targets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('alert_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('account_key', sa.Integer(), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('created_at', ats_app.engine.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', ats_app.engine.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['broker_accounts.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('alert_id', 'account_key', name='uq_alert_targets_alert_account')
    )
    with op.batch_alter_table('alert_targets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_targets_alert_id'), ['alert_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_alert_targets_user_id'), ['user_id'], unique=False)
    # Nullable, no default: existing accounts keep only their user's limits.
    with op.batch_alter_table('broker_accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('max_open_positions', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('max_lots_per_order', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('broker_accounts', schema=None) as batch_op:
        batch_op.drop_column('max_lots_per_order')
        batch_op.drop_column('max_open_positions')
    with op.batch_alter_table('alert_targets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_targets_user_id'))
        batch_op.drop_index(batch_op.f('ix_alert_targets_alert_id'))
    op.drop_table('alert_targets')
