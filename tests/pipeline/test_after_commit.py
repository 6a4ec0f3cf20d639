"""order_store.after_commit: steps run once their transaction commits, never after a
rollback, and one failing step does not cost the others theirs."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from ats_app.engine import audit, order_store
from ats_app.engine.db import get_engine


def test_a_failing_step_does_not_stop_the_others(database_url: str) -> None:
    ran: list[str] = []

    def broken() -> None:
        ran.append("broken")
        raise RuntimeError("Redis down")

    with Session(get_engine()) as s:
        order_store.after_commit(s, broken)
        order_store.after_commit(s, lambda: ran.append("notice"))
        with pytest.raises(RuntimeError, match="Redis down"):  # still told to the caller
            s.commit()
    assert ran == ["broken", "notice"]


def test_steps_are_dropped_on_rollback_and_run_once(database_url: str) -> None:
    ran: list[str] = []
    with Session(get_engine()) as s:
        order_store.after_commit(s, lambda: ran.append("dropped"))
        s.rollback()
        audit.record(s, "test.pending")  # added, never flushed: the rollback emits no SQL
        order_store.after_commit(s, lambda: ran.append("dropped too"))
        s.rollback()
        order_store.after_commit(s, lambda: ran.append("kept"))
        s.commit()
        s.commit()  # a second commit has nothing left to run
    assert ran == ["kept"]
