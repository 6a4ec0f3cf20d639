"""broker account egress source address

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: existing accounts keep leaving from the default address.
    with op.batch_alter_table('broker_accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('egress_source_ip',
                                      sqlmodel.sql.sqltypes.AutoString(length=64),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('broker_accounts', schema=None) as batch_op:
        batch_op.drop_column('egress_source_ip')
