"""Where each position's stop lives, for the dashboard: our monitor only ("ours"), or also a
stop-loss order resting in the broker's book ("at broker", `broker_stops`), and whether the
broker has it. Read-only; every query scoped to its user.

The broker's side is read from the newest order with purpose STOP of the position (a stop
replaced after a rejection or a partial fill is a new order; the newest is the one that
counts), with the broker's own text when it does not hold the stop. `state_of` is the pure
part: an order status (and the position's) -> what a trader is told, and whether it is a
warning: a position still open whose stop the broker does not hold is protected by our
monitor alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlmodel import Session, col, select

from ats_app.engine.core.fsm import OrderStatus
from ats_app.engine.core.money import to_rupees
from ats_app.engine.store.models import Order, Position

__all__ = ["StopView", "state_of", "stop_views"]

STOP = "STOP"  # Order.purpose of a resting stop (`broker_stops.STOP`)
OURS, AT_BROKER = "ours", "at broker"
CREATION_NOTE = "stop at broker"  # the reason `broker_stops` writes on a new stop: no news

S = OrderStatus
_RESTING = {S.TRIGGER_PENDING, S.OPEN}
_PLACING = {S.CREATED, S.SUBMITTING}
_GONE = {S.REJECTED, S.CANCELLED, S.FAILED}


@dataclass(frozen=True)
class StopView:
    where: str  # "ours" | "at broker"
    state: str  # "" for "ours"; "resting", "filled", "not at broker: <reason>", ...
    warning: bool  # the broker should hold the stop and does not (the position is not closed)
    trigger: str | None = None  # the resting order's trigger price, rupees ("95.00")
    broker_order_id: str | None = None
    reason: str = ""  # the broker's text when it does not hold the stop (verbatim)


def state_of(order_status: str | None, position_status: str, filled: int = 0,
             quantity: int = 0) -> tuple[str, bool]:
    """(what the page says, is it a warning) for a position with Stop at broker whose newest
    stop order has `order_status` (None: no order yet)."""
    open_position = position_status != "CLOSED"
    if order_status is None:
        return ("not at broker yet", open_position)
    status = S(order_status)
    if status in _RESTING:
        return ("resting", False)
    if status == S.FILLED:
        return ("filled", False)
    if status == S.PARTIALLY_FILLED:
        return (f"partly filled ({filled} of {quantity})", False)
    if status in _PLACING:
        return ("being placed", False)
    if status == S.UNKNOWN:
        return ("not confirmed yet: being looked up in the book", open_position)
    if status == S.CANCEL_PENDING:
        return ("being cancelled", False)
    assert status in _GONE, status
    if status == S.CANCELLED and not open_position:
        return ("cancelled", False)  # our exit took it out of the book: as it should
    return (f"not at broker: {status.value.lower()}", open_position)


def stop_views(session: Session, user_id: int, position_ids: Iterable[int]) -> dict[int, StopView]:
    """Each of `position_ids` that is the user's, by id (two queries in all)."""
    ids = sorted(set(position_ids))
    if not ids:
        return {}
    held = session.exec(
        select(Position.id, Position.broker_stop, Position.status)
        .where(Position.user_id == user_id).where(col(Position.id).in_(ids))
    ).all()
    newest: dict[int, Order] = {}
    for order in session.exec(
        select(Order).where(Order.user_id == user_id).where(Order.purpose == STOP)
        .where(col(Order.position_id).in_(ids)).order_by(col(Order.id))
    ).all():
        assert order.position_id is not None
        newest[order.position_id] = order  # ascending ids: the last one wins
    out: dict[int, StopView] = {}
    for pid, broker_stop, status in held:
        assert pid is not None
        order = newest.get(pid)
        if not broker_stop and order is None:
            out[pid] = StopView(OURS, "", False)
            continue
        state, warning = state_of(order.status if order else None, status,
                                  order.filled_quantity if order else 0,
                                  order.quantity if order else 0)
        trigger = to_rupees(order.trigger_paise) if order else None
        reason = order.reason if order and state.startswith("not at broker") else None
        out[pid] = StopView(AT_BROKER, state, warning,
                            None if trigger is None else f"{trigger:.2f}",
                            order.broker_order_id if order else None,
                            "" if reason in (None, CREATION_NOTE) else str(reason))
    return out
