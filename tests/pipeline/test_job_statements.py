"""How much database work one pipeline job does: a guard against the order path drifting
back to a session (and a pool checkout) per step. Counted in-process, on both databases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event
from sqlmodel import select

from ats_app.engine.broker.factory import broker_for
from ats_app.engine.core.errors import NotFound
from ats_app.engine.execution import entry as pipeline
from ats_app.engine.execution import exit_order
from ats_app.engine.store import db
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Alert, BrokerAccount, Position
from ats_app.engine.store.queueing import connection
from tests.pipeline.test_pipeline import _post

# Measured at 16 / 10 / 10 statements on SQLite (15 / 10 / 9 on PostgreSQL); before the
# jobs shared one session they were 41 / 20 / 19, before audit events were written in one
# insert per commit (and the risk check read its limits once) 23 / 12 / 11, before each risk
# check read limits, kill switch and day in one statement 20 / 10 / 10, before the alert came
# with its link in one read and the position's open reused the fill's row lock 18 / 10 / 10.
# The fan-out's per-account outcome rows added two to an entry (the account's row, and the
# verdict's read of the alert's outcomes): measured 20 on SQLite.
MAX_ENTRY, MAX_IGNORED, MAX_EXIT = 21, 12, 12


@contextmanager
def _counting() -> Iterator[dict[str, int]]:
    engine = db.get_engine()
    seen = {"statements": 0, "checkouts": 0}

    def statement(*_args: object) -> None:
        seen["statements"] += 1

    def checkout(*_args: object) -> None:
        seen["checkouts"] += 1

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "checkout", checkout)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "checkout", checkout)


def _run(job: Callable[[], str]) -> tuple[str, dict[str, int]]:
    with _counting() as seen:
        outcome = job()
    return outcome, seen


def test_paper_jobs_stay_within_their_statement_budget(world: dict) -> None:
    warm = _post(world["paper"], id="warm-up")["alert_id"]  # instrument index, quote cache
    assert pipeline.handle_alert(warm).startswith("filled")
    with session_scope() as s:
        (position,) = s.exec(select(Position)).all()
    assert exit_order.handle_exit(position.id, "stop_loss").startswith("closed")  # type: ignore[arg-type]

    entry = _post(world["paper"], id="entry")["alert_id"]
    outcome, entry_cost = _run(lambda: pipeline.handle_alert(entry))
    assert outcome.startswith("filled"), outcome
    again = _post(world["paper"], id="again")["alert_id"]
    outcome, ignored_cost = _run(lambda: pipeline.handle_alert(again))
    assert outcome == "ignored: position already open"
    with session_scope() as s:
        position = s.exec(select(Position).where(Position.status == "OPEN")).one()
        assert s.get(Alert, entry).status == "DONE" and s.get(Alert, again).status == "DONE"
    outcome, exit_cost = _run(lambda: exit_order.handle_exit(position.id, "stop_loss"))  # type: ignore[arg-type]
    assert outcome.startswith("closed"), outcome

    assert entry_cost["statements"] <= MAX_ENTRY, entry_cost
    assert ignored_cost["statements"] <= MAX_IGNORED, ignored_cost
    assert exit_cost["statements"] <= MAX_EXIT, exit_cost
    # One pooled connection per job: each checkout costs a pre-ping round trip on PostgreSQL.
    assert all(c["checkouts"] == 1 for c in (entry_cost, ignored_cost, exit_cost))


def test_a_live_broker_costs_one_read_of_its_account(world: dict) -> None:
    """Before the order goes out: the account's credentials and its declared IP in one read
    (they were two), and still only the owner's account."""
    with session_scope() as s:
        s.get(BrokerAccount, world["account"]).egress_ip = "203.0.113.7"  # type: ignore[union-attr]
    with session_scope() as s, _counting() as seen:
        broker = broker_for(s, world["user"], world["account"], paper=False, redis=connection())
    assert not broker.is_paper and seen["statements"] == 1, seen
    # No echo service and no source address here: the declared IP is what it reports.
    assert broker.egress_ip() == "203.0.113.7"  # type: ignore[attr-defined]
    stranger = world["user"] + 1
    with session_scope() as s, pytest.raises(NotFound):
        broker_for(s, stranger, world["account"], paper=False, redis=connection())
