"""audit.record: a transaction's events are written by its commit, in one insert and in the
order recorded, and dropped by its rollback (or a close without a commit)."""

from __future__ import annotations

import json

from sqlalchemy import event
from sqlmodel import Session, col, select

from ats_app.engine.store import audit
from ats_app.engine.store.db import get_engine
from ats_app.engine.store.models import AuditEvent


def _events() -> list[tuple[str, str | None, str]]:
    with Session(get_engine()) as s:
        rows = s.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all()
        return [(e.action, e.subject, e.detail) for e in rows]


def test_events_are_written_by_the_commit_in_one_insert_in_order(database_url: str) -> None:
    inserts: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if statement.startswith("INSERT INTO audit_events"):
            inserts.append(statement)

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", seen)
    try:
        with Session(engine) as s:
            audit.record(s, "test.first", subject="a", rule="x")
            audit.record(s, "test.second", subject="b")
            audit.record(s, "test.third")
            assert _events() == []  # nothing before the commit
            s.commit()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(inserts) == 1
    assert _events() == [("test.first", "a", json.dumps({"rule": "x"})),
                         ("test.second", "b", ""), ("test.third", None, "")]


def test_events_are_dropped_by_a_rollback_or_a_close_without_commit(database_url: str) -> None:
    with Session(get_engine()) as s:
        audit.record(s, "test.rolled_back")
        s.rollback()
        audit.record(s, "test.kept")
        s.commit()
        s.commit()  # a second commit writes nothing again
        audit.record(s, "test.closed")
        s.close()
        audit.record(s, "test.after_close")
        s.commit()  # the session, used again after its close, writes only its new event
    assert [a for a, _, _ in _events()] == ["test.kept", "test.after_close"]
