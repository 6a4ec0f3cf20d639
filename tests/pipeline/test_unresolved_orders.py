"""An order whose outcome is unknown stays the job's until the broker's book says what became
of it: a book that cannot be read is a reason to run the job again, never a verdict.

Found by the soak (seed 3): placeOrder answered with an empty body (order UNKNOWN), the job's
retry found the order book unreadable too, and the account's target was recorded FAILED and
the alert REJECTED — final — with the order left UNKNOWN for good: no follower, no recovery
looks at an UNKNOWN order of a finished alert, so an order Angel did hold would have been a
position nobody watched.
"""

from __future__ import annotations

import httpx
import pytest
from sqlmodel import select

from ats_app.engine.broker.errors import BrokerError
from ats_app.engine.execution import entry, fanout
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Alert, AlertTarget, AuditEvent, Order, Position
from tests.pipeline.test_fanout import (
    _book,
    _client,
    _fault,
    _follow,
    _orders,
    _post,
    _warm,
    fleet,
)

__all__ = ["fleet"]  # the fixture, shared with test_fanout


def _alert(alert_id: int) -> Alert:
    with session_scope() as s:
        alert = s.get(Alert, alert_id)
        assert alert is not None
        return alert


@pytest.mark.parametrize("fleet", [2], indirect=True)
def test_an_unknown_order_with_the_book_unreadable_is_retried_not_failed(fleet: dict) -> None:
    _warm(fleet)
    sim, (a0, a1) = fleet["sim"], fleet["accounts"]
    # Account 0: placeOrder answers an empty body (not placed), and its book cannot be read.
    _fault(sim, route="placeOrder", kind="empty", client=_client(0), times=1)
    _fault(sim, route="getOrderBook", kind="empty", client=_client(0))
    alert_id = _post(fleet, id="unreadable")
    for _ in range(2):  # the job and RQ's retry: both meet the unreadable book
        with pytest.raises(BrokerError):
            entry.handle_alert(alert_id)
        orders = {o.account_id: o for o in _orders(alert_id)}
        assert orders[a0].status == "UNKNOWN"
        assert _alert(alert_id).status == "PROCESSING"  # no verdict while an order is unknown
    with session_scope() as s:
        targets = {t.account_id: t.outcome for t in s.exec(
            select(AlertTarget).where(AlertTarget.alert_id == alert_id)).all()}
        unresolved = s.exec(select(AuditEvent).where(
            AuditEvent.action == "alert.target_unresolved")).all()
    assert targets.get(a0) != "FAILED" and targets[a1] == "ORDERED"
    assert unresolved
    # The book readable again: the next run looks the order up (not in the book: it never
    # reached Angel), sends it under its next ordertag, and the account trades once.
    httpx.request("DELETE", f"{sim.base_url}/sim/faults", json={}).raise_for_status()
    entry.handle_alert(alert_id)
    for a in (a0, a1):
        _follow(fleet, a)
    with session_scope() as s:
        sent = s.exec(select(Order).where(Order.alert_id == alert_id)
                      .where(Order.account_id == a0)).all()
    assert sorted(o.status for o in sent) == ["FAILED", "FILLED"]  # attempt 1 not in book
    book = [o["ordertag"] for o in _book(sim)]
    assert sum(book.count(o.client_order_id) for o in sent) == 1
    assert _alert(alert_id).status == "DONE"


def _position(alert_id: int) -> Position:
    with session_scope() as s:
        order = s.exec(select(Order).where(Order.alert_id == alert_id)).one()
        position = s.get(Position, order.position_id)
        assert position is not None
        return position


@pytest.mark.parametrize("fleet", [1], indirect=True)
def test_an_exit_alerts_unknown_sell_with_the_book_unreadable_is_retried_not_failed(
        fleet: dict) -> None:
    _warm(fleet)
    sim, (a0,) = fleet["sim"], fleet["accounts"]
    buy = _post(fleet, id="buy")
    entry.handle_alert(buy)
    _follow(fleet, a0)
    assert _position(buy).status == "OPEN"
    _fault(sim, route="placeOrder", kind="empty", times=1)
    _fault(sim, route="getOrderBook", kind="empty")
    sell = _post(fleet, action="exit", id="sell")
    for _ in range(2):
        with pytest.raises(BrokerError):
            entry.handle_alert(sell)
        assert _position(buy).status == "EXITING"  # nothing else sells it meanwhile
        assert _alert(sell).status == "PROCESSING"
    # Readable again: the sell is found absent from the book (it never reached Angel) and is
    # sent once more under the next client id; the position closes, the alert is DONE.
    httpx.request("DELETE", f"{sim.base_url}/sim/faults", json={}).raise_for_status()
    entry.handle_alert(sell)
    _follow(fleet, a0)
    assert _position(buy).status == "CLOSED"
    assert _alert(sell).status == "DONE"
    with session_scope() as s:
        sells = s.exec(select(Order).where(Order.position_id == _position(buy).id)
                       .where(Order.purpose == "EXIT").order_by(Order.id)).all()
    assert [o.status for o in sells] == ["FAILED", "FILLED"]
    book = [o["ordertag"] for o in _book(sim) if o["transactiontype"] == "SELL"]
    assert book == [sells[1].client_order_id]


@pytest.mark.parametrize("fleet", [1], indirect=True)
def test_an_exit_alerts_sell_that_never_reached_the_broker_is_sent_again(fleet: dict) -> None:
    """Seen in the soak: an exit alert's sell got an empty answer, was looked up and not
    found in the book, and the position was given back OPEN with the alert REJECTED — the
    exit the trader asked for simply not done."""
    _warm(fleet)
    sim, (a0,) = fleet["sim"], fleet["accounts"]
    buy = _post(fleet, id="buy2")
    entry.handle_alert(buy)
    _follow(fleet, a0)
    _fault(sim, route="placeOrder", kind="empty", times=1)  # the sell never arrives
    sell = _post(fleet, action="exit", id="sell2")
    entry.handle_alert(sell)
    _follow(fleet, a0)
    with session_scope() as s:
        sells = s.exec(select(Order).where(Order.position_id == _position(buy).id)
                       .where(Order.purpose == "EXIT").order_by(Order.id)).all()
    assert [o.status for o in sells] == ["FAILED", "FILLED"]
    assert _position(buy).status == "CLOSED"
    assert _position(buy).exit_reason == "signal"  # the exit's reason, not the attempt's fate
    assert _alert(sell).status == "DONE"
    book = [o for o in _book(sim) if o["transactiontype"] == "SELL"]
    assert [o["ordertag"] for o in book] == [sells[1].client_order_id]  # sold once


@pytest.mark.parametrize("fleet", [1], indirect=True)
def test_a_second_exit_job_follows_the_attempt_another_job_sent_again(fleet: dict) -> None:
    """The soak (seed 70417): the monitor's exit and a sell alert ran at once on one position.
    Both looked the first sell (lost answer) up; the monitor's job found it absent and sent
    it again as P..X1; the alert's job, finding the same absence a moment later, sent a
    third attempt (its id from a count of attempts): sold twice. Its successor's id now
    follows from the failed attempt's own, so the second job finds X1 and follows it."""
    from ats_app.engine.execution.exit_order import exit_position

    _warm(fleet)
    sim, (a0,) = fleet["sim"], fleet["accounts"]
    buy = _post(fleet, id="buy3")
    entry.handle_alert(buy)
    _follow(fleet, a0)
    _fault(sim, route="placeOrder", kind="empty", times=1)  # the first sell never arrives
    sell = _post(fleet, action="exit", id="sell3")
    entry.handle_alert(sell)  # X0 looked up, absent, FAILED; X1 sent and filled
    _follow(fleet, a0)
    position = _position(buy)
    # What the other job read as it began, before the first job's look-up ended: the
    # position EXITING, its first sell still UNKNOWN.
    with session_scope() as s:
        first = s.exec(select(Order).where(Order.client_order_id == f"P{position.id}X0")).one()
        first.status = "UNKNOWN"
        s.get(Position, position.id).status = "EXITING"  # type: ignore[union-attr]
    exit_position(position.id, "trailing_stop")  # type: ignore[arg-type]
    book = [o["ordertag"] for o in _book(sim) if o["transactiontype"] == "SELL"]
    assert book == [f"P{position.id}X1"]  # sold once
    with session_scope() as s:
        tags = s.exec(select(Order.client_order_id).where(Order.position_id == position.id)
                      .where(Order.purpose == "EXIT")).all()
    assert sorted(tags) == [f"P{position.id}X0", f"P{position.id}X1"]
    assert _position(buy).status == "CLOSED"


@pytest.mark.parametrize("fleet", [1], indirect=True)
def test_a_resent_entry_with_its_answer_lost_and_the_book_unreadable_is_retried(
        fleet: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """The 3-minute soak (seed 3): an entry's first attempt never reached Angel and was sent
    again; that attempt's answer was lost and the book could not be read. The job took the
    first attempt (FAILED) for the account's order and gave the alert REJECTED, the resent
    order left UNKNOWN for good: at Angel, a position nobody would have watched."""
    _warm(fleet)
    sim, (a0,) = fleet["sim"], fleet["accounts"]
    real = fanout.send_or_drive

    def resend_meets_faults(*args: object) -> Order:
        # Angel takes the resent order but its answer never comes; its book answers 500.
        _fault(sim, route="placeOrder", kind="lost_answer", ms=9000, times=1)
        _fault(sim, route="getOrderBook", kind="http500")
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(fanout, "send_or_drive", resend_meets_faults)
    _fault(sim, route="placeOrder", kind="empty", times=1)  # the first attempt never arrives
    alert_id = _post(fleet, id="resent-lost")
    with pytest.raises(BrokerError):
        entry.handle_alert(alert_id)
    assert _alert(alert_id).status == "PROCESSING"  # no verdict while an order is unknown
    assert [o.status for o in _orders(alert_id)] == ["FAILED", "UNKNOWN"]
    # RQ's retry, the book readable again: the resent order is found, never sent a third time.
    httpx.delete(f"{sim.base_url}/sim/faults").raise_for_status()
    monkeypatch.setattr(fanout, "send_or_drive", real)
    entry.handle_alert(alert_id)
    _follow(fleet, a0)
    orders = _orders(alert_id)
    assert [o.status for o in orders] == ["FAILED", "FILLED"]
    assert _alert(alert_id).status == "DONE"
    book = [o["ordertag"] for o in _book(sim)]
    assert book == [*book[:-1], orders[1].client_order_id]  # the retry sent nothing
    assert book.count(orders[1].client_order_id) == 1
    assert orders[0].client_order_id not in book
