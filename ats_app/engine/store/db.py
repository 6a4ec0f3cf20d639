"""Database engine and sessions. The one place that knows which database is in use."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, create_engine

from ats_app.engine.core.config import PROJECT_ROOT, settings

_engines: dict[str, sa.Engine] = {}
SQLITE_BUSY_TIMEOUT_MS = 5000
SQLITE_BUSY_POLL_S = 0.0005
T = TypeVar("T")
_sqlite_writer = threading.Lock()


def normalize_url(url: str) -> str:
    """Use psycopg 3 for plain postgresql:// URLs (psycopg2 is not installed)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")  # web + worker + monitor write concurrently
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.close()


def get_engine(url: str | None = None) -> sa.Engine:
    url = normalize_url(url or settings().database_url)
    engine = _engines.get(url)
    if engine is None:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        _engines[url] = engine
    return engine


def write_promptly(work: Callable[[sa.Connection], T], url: str | None = None) -> T:
    """Run `work` in a transaction of its own, and commit.

    On SQLite, a writer that finds the database locked (another process committing) is made
    to wait by SQLite's busy handler in sleeps of 1, 2, 5, 10 ... 100 ms: a 1 ms wait for a
    worker's commit became tens of milliseconds of the webhook ack. Here it re-tries every
    0.5 ms instead, for as long as the busy timeout allows."""
    engine = get_engine(url)
    if engine.dialect.name != "sqlite":
        with engine.begin() as c:
            return work(c)
    # This process's own writers queue on a lock (no spinning, no GIL churn): only another
    # process's lock is waited out by re-trying.
    with _sqlite_writer, engine.connect() as c:
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        _set_busy_timeout(c, 0)
        try:
            while True:
                try:
                    with c.begin():
                        return work(c)
                except sa.exc.OperationalError as exc:
                    if "locked" not in str(exc.orig) or time.monotonic() > deadline:
                        raise
                time.sleep(SQLITE_BUSY_POLL_S)
        finally:
            _set_busy_timeout(c, SQLITE_BUSY_TIMEOUT_MS)


def _set_busy_timeout(c: sa.Connection, ms: int) -> None:
    c.exec_driver_sql(f"PRAGMA busy_timeout={ms}")
    c.commit()  # SQLAlchemy's autobegun transaction (the pragma itself takes no lock)


def dispose_engines() -> None:
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(get_engine(url), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# --- steps that wait for a commit, and joining a caller's transaction -------------------

log = logging.getLogger("ats.db")
_HOOKS = "ats_after_commit"


def after_commit(session: Session, fn: Callable[[], None]) -> None:
    """Run `fn` once `session`'s current transaction commits; drop it if it rolls back.

    For what others act on (notices, pub/sub, enqueued jobs): they must never see a change
    that is not durable yet, nor one that was rolled back.
    """
    if not session.in_transaction():
        session.begin()  # the step belongs to a transaction, even one with no SQL yet
    hooks: list[Callable[[], None]] | None = session.info.get(_HOOKS)
    if hooks is None:
        hooks = session.info[_HOOKS] = []
        event.listen(session, "after_commit", _run_hooks)
        # Any rollback, also one that never reached the database (nothing was flushed yet):
        # "after_rollback" fires only for those that did, and kept such steps for later.
        event.listen(session, "after_soft_rollback", _drop_hooks)
    hooks.append(fn)


def _run_hooks(session: Session) -> None:
    hooks = session.info.get(_HOOKS) or []
    session.info[_HOOKS] = []
    failed: Exception | None = None
    for fn in hooks:
        try:
            fn()
        except Exception as exc:  # the others still run: each tells of its own change
            log.exception("a step after a commit failed (the change itself is committed)")
            failed = failed or exc
    if failed is not None:
        raise failed  # to the caller as before (e.g. RQ re-runs the idempotent job)


def _drop_hooks(session: Session, previous: SessionTransaction) -> None:
    if not previous.nested:  # a savepoint's rollback leaves the outer transaction standing
        session.info[_HOOKS] = []


@contextmanager
def joined(
    session: Session | None,
    own: Callable[[], AbstractContextManager[Session]] = session_scope,
) -> Iterator[Session]:
    """The caller's session as is (it commits), else a transaction of our own (`own`)."""
    if session is not None:
        yield session
        return
    with own() as s:
        yield s



def alembic_config(url: str | None = None):
    from alembic.config import Config

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url or settings().database_url))
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Apply migrations up to `revision` (head by default)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)
