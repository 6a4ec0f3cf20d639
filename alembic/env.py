"""Alembic environment: migrates DATABASE_URL (or the URL set by ats_app.engine.store.db)."""

from __future__ import annotations

from sqlmodel import SQLModel

import ats_app.engine.store.models  # noqa: F401 - registers the tables on SQLModel.metadata
from alembic import context
from ats_app.engine.core.config import settings
from ats_app.engine.store.db import get_engine, normalize_url

config = context.config
target_metadata = SQLModel.metadata


def _url() -> str:
    return normalize_url(config.get_main_option("sqlalchemy.url") or settings().database_url)


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = get_engine(_url())
    with connectable.connect() as connection:
        # Batch mode lets ALTERs work on SQLite, which cannot alter tables in place.
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
