"""Startup reconciliation decisions, checked against the order state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ats_app.engine.broker.base import BrokerOrder
from ats_app.engine.broker.reconcile import PendingOrder, reconcile
from ats_app.engine.core.fsm import OrderEvent as E
from ats_app.engine.core.fsm import OrderStatus as S

NOW = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)


def row(coid: str, status: S, filled: int = 0) -> BrokerOrder:
    return BrokerOrder(coid, f"B-{coid}", status, 75, filled,
                       Decimal("101.5") if filled else None,
                       "Insufficient Funds" if status == S.REJECTED else None)


@pytest.mark.parametrize(("ours", "book_status", "events", "final"), [
    pytest.param(S.UNKNOWN, S.FILLED, [E.RECONCILE_FOUND, E.FILL], S.FILLED, id="unknown-filled"),
    pytest.param(S.UNKNOWN, S.OPEN, [E.RECONCILE_FOUND], S.OPEN, id="unknown-open"),
    pytest.param(S.UNKNOWN, S.REJECTED, [E.RECONCILE_FOUND, E.REJECT], S.REJECTED,
                 id="unknown-rejected"),
    pytest.param(S.SUBMITTING, S.PARTIALLY_FILLED,
                 [E.TIMEOUT, E.RECONCILE_FOUND, E.PARTIAL_FILL], S.PARTIALLY_FILLED,
                 id="submitting-partial"),
    pytest.param(S.SUBMITTING, S.CANCELLED, [E.TIMEOUT, E.RECONCILE_FOUND, E.CANCEL],
                 S.CANCELLED, id="submitting-cancelled"),
    pytest.param(S.UNKNOWN, None, [E.RECONCILE_NOT_FOUND], S.FAILED, id="unknown-missing"),
    pytest.param(S.SUBMITTING, None, [E.TIMEOUT, E.RECONCILE_NOT_FOUND], S.FAILED,
                 id="submitting-missing"),
])
def test_decisions(ours: S, book_status: S | None, events: list[E], final: S) -> None:
    book = [row("x", book_status, 75 if book_status == S.FILLED else 25)] if book_status else []
    [d] = reconcile([PendingOrder("x", ours, NOW - timedelta(minutes=5))],
                    [row("other", S.FILLED, 75), *book], now=NOW)
    assert (d.client_order_id, d.events, d.final_status) == ("x", events, final)
    assert (d.found is None) == (book_status is None)


def test_recent_missing_order_waits_for_the_book() -> None:
    pending = [PendingOrder("young", S.UNKNOWN, NOW - timedelta(seconds=5)),
               PendingOrder("old", S.UNKNOWN, NOW - timedelta(minutes=5))]
    assert [d.client_order_id for d in reconcile(pending, [], now=NOW)] == ["old"]


def test_settled_orders_are_ignored() -> None:
    assert reconcile([PendingOrder("x", S.FILLED)], [row("x", S.FILLED, 75)]) == []


def test_found_row_carries_fill_and_reason() -> None:
    [d] = reconcile([PendingOrder("x", S.UNKNOWN)], [row("x", S.REJECTED)])
    assert d.found is not None and d.found.reason == "Insufficient Funds"
