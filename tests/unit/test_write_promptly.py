"""db.write_promptly: on SQLite a write waits out another process's lock by re-trying (not by
SQLite's 1-100 ms back-off sleeps), still gives up at the busy timeout, and leaves the pooled
connection's own busy timeout as it was."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from ats_app.engine.store import db


@pytest.fixture
def sqlite_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    with db.get_engine(url).begin() as c:
        c.exec_driver_sql("CREATE TABLE t (v INTEGER)")
    yield url
    db.dispose_engines()


def _hold_write_lock(path: str, seconds: float, locked: threading.Event) -> threading.Thread:
    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None)  # another writer, as a worker
        other.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(seconds)
        other.execute("COMMIT")
        other.close()

    thread = threading.Thread(target=hold)
    thread.start()
    return thread


def _insert(c: sa.Connection) -> int:
    c.exec_driver_sql("INSERT INTO t (v) VALUES (1)")
    return 7


def test_a_write_waits_for_another_writers_lock(sqlite_db: str) -> None:
    locked = threading.Event()
    holder = _hold_write_lock(sqlite_db.split("///", 1)[1], 0.3, locked)
    locked.wait(5)
    assert db.write_promptly(_insert, sqlite_db) == 7  # waited, then committed
    holder.join()
    with db.get_engine(sqlite_db).connect() as c:
        assert c.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1
        # The pooled connection got its usual busy timeout back.
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.SQLITE_BUSY_TIMEOUT_MS


def test_a_write_gives_up_at_the_busy_timeout(
    sqlite_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 100)
    locked = threading.Event()
    holder = _hold_write_lock(sqlite_db.split("///", 1)[1], 1.0, locked)
    locked.wait(5)
    with pytest.raises(sa.exc.OperationalError, match="locked"):
        db.write_promptly(_insert, sqlite_db)
    holder.join()
    with db.get_engine(sqlite_db).connect() as c:
        assert c.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0  # nothing half-written
