"""alerts and telegram (issue 26): refused alerts, the Telegram chat bound to each user

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import ats_app.engine.store.models
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('refused_alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('link_id', sa.Integer(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('field', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('source_ip', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('received_at', ats_app.engine.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['link_id'], ['webhook_links.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('refused_alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refused_alerts_link_id'), ['link_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_refused_alerts_user_id'), ['user_id'], unique=False)
    op.create_table('telegram_chats',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('chat_id', sa.BigInteger(), nullable=False),
    sa.Column('username', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('bound_at', ats_app.engine.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id'),
    sa.UniqueConstraint('chat_id')
    )


def downgrade() -> None:
    op.drop_table('telegram_chats')
    with op.batch_alter_table('refused_alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refused_alerts_user_id'))
        batch_op.drop_index(batch_op.f('ix_refused_alerts_link_id'))
    op.drop_table('refused_alerts')
