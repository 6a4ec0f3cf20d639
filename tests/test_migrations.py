"""Migrations build the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

import ats_app.engine.store.models  # noqa: F401 - registers tables
from alembic import command
from ats_app.engine.store.db import alembic_config, get_engine, upgrade


def _diff(url: str) -> list:
    with get_engine(url).connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, SQLModel.metadata)


def _current(url: str) -> str | None:
    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_upgraded_schema_matches_models(database_url: str) -> None:
    assert _diff(database_url) == []
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    assert _current(database_url) == head


def test_upgrade_is_idempotent_and_downgrade_reverses(database_url: str) -> None:
    upgrade(database_url)  # already at head: a no-op, not an error
    command.downgrade(alembic_config(database_url), "base")
    tables = set(sa.inspect(get_engine(database_url)).get_table_names())
    assert tables <= {"alembic_version"}
    upgrade(database_url)
    assert _diff(database_url) == []


def test_older_database_is_upgraded_keeping_rows(database_url: str) -> None:
    """A database at the first revision, with trading rows in it, upgrades to head intact."""
    script = ScriptDirectory.from_config(alembic_config(database_url))
    revisions = [r.revision for r in script.walk_revisions("base", "heads")][::-1]
    command.downgrade(alembic_config(database_url), "base")
    command.upgrade(alembic_config(database_url), revisions[0])
    now = "CURRENT_TIMESTAMP"
    with get_engine(database_url).begin() as c:
        c.execute(sa.text(
            "INSERT INTO users (id, username, password_hash, first_name, last_name, is_admin, "
            "created_at, password_changed_at) "
            f"VALUES (1, 'old', 'h', 'O', 'L', true, {now}, {now})"))
        c.execute(sa.text(
            "INSERT INTO webhook_links (id, user_id, name, token, secret_enc, paper, enabled, "
            "created_at, updated_at) "
            f"VALUES (1, 1, 'l', 'tok', 'enc1:x', true, true, {now}, {now})"))
        c.execute(sa.text(
            "INSERT INTO orders (user_id, client_order_id, exchange, symbol, symbol_token, side, "
            "order_type, product, quantity, status, filled_quantity, paper, created_at, "
            f"updated_at) VALUES (1, 'A1E0', 'NFO', 'X', '1', 'BUY', 'MARKET', 'INTRADAY', 65, "
            f"'FILLED', 65, true, {now}, {now})"))
    upgrade(database_url)
    with get_engine(database_url).connect() as c:
        assert c.execute(sa.text("SELECT username FROM users")).scalars().all() == ["old"]
        # Columns added later get their documented defaults on existing rows.
        assert c.execute(sa.text("SELECT purpose FROM orders")).scalars().all() == ["ENTRY"]
    assert _diff(database_url) == []
