"""alert targets found by their order: a finished order settles every alert waiting on it

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('alert_targets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_targets_order_id'), ['order_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('alert_targets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_targets_order_id'))
