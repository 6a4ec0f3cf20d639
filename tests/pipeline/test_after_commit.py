"""db.after_commit: steps run once their transaction commits, never after a
rollback, and one failing step does not cost the others theirs."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from ats_app.engine.execution import order_store
from ats_app.engine.store import audit, db
from ats_app.engine.store.db import get_engine


def test_a_failing_step_does_not_stop_the_others(database_url: str) -> None:
    ran: list[str] = []

    def broken() -> None:
        ran.append("broken")
        raise RuntimeError("Redis down")

    with Session(get_engine()) as s:
        db.after_commit(s, broken)
        db.after_commit(s, lambda: ran.append("notice"))
        with pytest.raises(RuntimeError, match="Redis down"):  # still told to the caller
            s.commit()
    assert ran == ["broken", "notice"]


def test_steps_are_dropped_on_rollback_and_run_once(database_url: str) -> None:
    ran: list[str] = []
    with Session(get_engine()) as s:
        db.after_commit(s, lambda: ran.append("dropped"))
        s.rollback()
        audit.record(s, "test.pending")  # added, never flushed: the rollback emits no SQL
        db.after_commit(s, lambda: ran.append("dropped too"))
        s.rollback()
        db.after_commit(s, lambda: ran.append("kept"))
        s.commit()
        s.commit()  # a second commit has nothing left to run
    assert ran == ["kept"]


def test_an_order_locked_by_a_transition_is_remembered_until_the_transaction_ends(
    database_url: str,
) -> None:
    """`order_store.locked` spares a second locked read of the row within the transaction that
    locked it (`positions.open_from_entry` after the fill), and only there."""
    from ats_app.engine.core.fsm import OrderEvent
    from ats_app.engine.store.db import session_scope
    from ats_app.engine.store.models import Order
    from ats_app.engine.tenants import users

    with session_scope() as s:
        uid = users.create_user(s, "trader", "password123", "T", "R").id
    order = order_store.create(Order(user_id=uid, client_order_id="L1", purpose="ENTRY",
                                     exchange="NFO", symbol="X", symbol_token="1", side="BUY",
                                     quantity=65))
    with Session(get_engine(), expire_on_commit=False) as s:
        assert order_store.locked(s, order.id) is None  # type: ignore[arg-type]
        moved = order_store.transition(order.id, OrderEvent.SUBMIT, session=s)  # type: ignore[arg-type]
        assert order_store.locked(s, order.id) is moved  # type: ignore[arg-type]
        s.commit()
        assert order_store.locked(s, order.id) is None  # type: ignore[arg-type]
        order_store.transition(order.id, OrderEvent.TIMEOUT, session=s)  # type: ignore[arg-type]
        s.rollback()
        assert order_store.locked(s, order.id) is None  # type: ignore[arg-type]
