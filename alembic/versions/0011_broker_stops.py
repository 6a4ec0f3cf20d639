"""broker stops (issue 25)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('webhook_links', schema=None) as batch_op:
        batch_op.add_column(sa.Column('broker_stop', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    with op.batch_alter_table('positions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('broker_stop', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trigger_paise', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('trigger_paise')
    with op.batch_alter_table('positions', schema=None) as batch_op:
        batch_op.drop_column('broker_stop')
    with op.batch_alter_table('webhook_links', schema=None) as batch_op:
        batch_op.drop_column('broker_stop')
