"""The order state machine: one table `(status, event) -> next status`, nothing else.

Orders change only by applying events. Anything not in the table raises `InvalidTransition`,
so a retried job that finds its order already SUBMITTING cannot "submit" it again: it must
declare the outcome unknown (TIMEOUT) and reconcile with the broker's order book by ordertag.

Pure: no I/O. Broker status strings are mapped to events in `broker.status`, not here.
Statuses and events are StrEnums whose values equal their names; the database stores them.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from enum import StrEnum

__all__ = [
    "AVG_PRICE_QUANTUM",
    "FILL_TO_POSITION",
    "TRANSITIONS",
    "InvalidTransition",
    "OrderEvent",
    "OrderStatus",
    "apply",
    "apply_fill",
    "is_terminal",
    "is_working",
    "needs_reconciliation",
]


class OrderStatus(StrEnum):
    CREATED = "CREATED"  # row written, not yet sent
    SUBMITTING = "SUBMITTING"  # broker call in flight
    UNKNOWN = "UNKNOWN"  # send timed out: reconcile by ordertag, never resend blindly
    OPEN = "OPEN"  # accepted by the broker, working
    TRIGGER_PENDING = "TRIGGER_PENDING"  # stop order parked until its trigger trades
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCEL_PENDING = "CANCEL_PENDING"  # cancel asked for, not yet confirmed
    CANCELLED = "CANCELLED"  # may carry a filled quantity (partial fill, rest cancelled)
    REJECTED = "REJECTED"  # the broker or exchange refused it
    FAILED = "FAILED"  # never reached the broker


class OrderEvent(StrEnum):
    SUBMIT = "SUBMIT"  # we are about to call the broker
    ACCEPT = "ACCEPT"  # broker reports the order working ("open" and its variants)
    TIMEOUT = "TIMEOUT"  # send timed out / connection dropped / worker died mid-call
    RECONCILE_FOUND = "RECONCILE_FOUND"  # order book holds our ordertag
    RECONCILE_NOT_FOUND = "RECONCILE_NOT_FOUND"  # order book settled without our ordertag
    TRIGGER = "TRIGGER"  # broker reports "trigger pending"
    PARTIAL_FILL = "PARTIAL_FILL"
    FILL = "FILL"  # completely filled
    CANCEL_REQUEST = "CANCEL_REQUEST"  # we (or the user in Angel's app) asked to cancel
    CANCEL = "CANCEL"  # broker confirms cancelled
    CANCEL_REJECT = "CANCEL_REJECT"  # broker refused our cancel; the order keeps working
    REJECT = "REJECT"
    FAIL = "FAIL"  # refused before sending (risk gate, no session, bad contract)


class InvalidTransition(Exception):
    """An event that the table does not allow from the order's current status.

    On a terminal status this is normally a stale or duplicate broker report (audit it and
    change nothing); on any other status it is a bug or a broker behaviour we do not model.
    """

    def __init__(self, status: OrderStatus, event: OrderEvent) -> None:
        self.status = status
        self.event = event
        self.target = _EVENT_TARGET[event]
        super().__init__(f"{status.value} -> {self.target.value} via {event.value}")


S = OrderStatus
E = OrderEvent

# Where each event would normally take an order; only used to word InvalidTransition.
_EVENT_TARGET: dict[OrderEvent, OrderStatus] = {
    E.SUBMIT: S.SUBMITTING,
    E.ACCEPT: S.OPEN,
    E.TIMEOUT: S.UNKNOWN,
    E.RECONCILE_FOUND: S.OPEN,
    E.RECONCILE_NOT_FOUND: S.FAILED,
    E.TRIGGER: S.TRIGGER_PENDING,
    E.PARTIAL_FILL: S.PARTIALLY_FILLED,
    E.FILL: S.FILLED,
    E.CANCEL_REQUEST: S.CANCEL_PENDING,
    E.CANCEL: S.CANCELLED,
    E.CANCEL_REJECT: S.OPEN,
    E.REJECT: S.REJECTED,
    E.FAIL: S.FAILED,
}

# Reports the order-update socket can deliver before our REST call has answered (or while the
# outcome is UNKNOWN): a market order can fill within milliseconds of reaching the exchange.
_FIRST_REPORTS: dict[OrderEvent, OrderStatus] = {
    E.ACCEPT: S.OPEN,
    E.TRIGGER: S.TRIGGER_PENDING,
    E.PARTIAL_FILL: S.PARTIALLY_FILLED,
    E.FILL: S.FILLED,
    E.REJECT: S.REJECTED,
    E.CANCEL: S.CANCELLED,  # real world: IOC with nothing to match, cancelled at once
}

TRANSITIONS: dict[tuple[OrderStatus, OrderEvent], OrderStatus] = {
    (S.CREATED, E.SUBMIT): S.SUBMITTING,
    (S.CREATED, E.FAIL): S.FAILED,
    # Only when no request can have left (e.g. login failed before the order call).
    (S.SUBMITTING, E.FAIL): S.FAILED,
    (S.SUBMITTING, E.TIMEOUT): S.UNKNOWN,
    **{(S.SUBMITTING, ev): to for ev, to in _FIRST_REPORTS.items()},
    # Two audit steps on purpose: "found", then whatever status the order book showed.
    (S.UNKNOWN, E.RECONCILE_FOUND): S.OPEN,
    # Callers send this only after the order book has had time to show the order.
    (S.UNKNOWN, E.RECONCILE_NOT_FOUND): S.FAILED,
    **{(S.UNKNOWN, ev): to for ev, to in _FIRST_REPORTS.items()},
    (S.OPEN, E.ACCEPT): S.OPEN,  # repeated "open" from order-book polling
    (S.OPEN, E.TRIGGER): S.TRIGGER_PENDING,  # SL order: REST says accepted, book says trigger
    (S.OPEN, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.OPEN, E.FILL): S.FILLED,
    (S.OPEN, E.CANCEL_REQUEST): S.CANCEL_PENDING,
    (S.OPEN, E.CANCEL): S.CANCELLED,  # real world: cancelled in Angel's app, or at day end
    (S.OPEN, E.REJECT): S.REJECTED,  # real world: RMS rejects after returning an order id
    (S.TRIGGER_PENDING, E.TRIGGER): S.TRIGGER_PENDING,  # repeated report
    (S.TRIGGER_PENDING, E.ACCEPT): S.OPEN,  # triggered, now a working order
    (S.TRIGGER_PENDING, E.PARTIAL_FILL): S.PARTIALLY_FILLED,  # triggered and matched at once
    (S.TRIGGER_PENDING, E.FILL): S.FILLED,
    (S.TRIGGER_PENDING, E.CANCEL_REQUEST): S.CANCEL_PENDING,
    (S.TRIGGER_PENDING, E.CANCEL): S.CANCELLED,
    (S.TRIGGER_PENDING, E.REJECT): S.REJECTED,  # real world: price band breached at trigger
    (S.PARTIALLY_FILLED, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    # The order book says "open" for a partly filled order; filled quantity never goes back.
    (S.PARTIALLY_FILLED, E.ACCEPT): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, E.FILL): S.FILLED,
    (S.PARTIALLY_FILLED, E.CANCEL_REQUEST): S.CANCEL_PENDING,
    (S.PARTIALLY_FILLED, E.CANCEL): S.CANCELLED,  # real world: IOC remainder cancelled
    (S.CANCEL_PENDING, E.CANCEL_REQUEST): S.CANCEL_PENDING,  # double click, repeated report
    (S.CANCEL_PENDING, E.ACCEPT): S.CANCEL_PENDING,  # stale "open" before the cancel lands
    (S.CANCEL_PENDING, E.CANCEL): S.CANCELLED,
    # Real world: the cancel refused (order already matching). A partly filled order then
    # needs its PARTIAL_FILL re-applied by the caller, which knows the filled quantity.
    (S.CANCEL_PENDING, E.CANCEL_REJECT): S.OPEN,
    # Real world: fills race the cancel request; the exchange matched first.
    (S.CANCEL_PENDING, E.PARTIAL_FILL): S.CANCEL_PENDING,
    (S.CANCEL_PENDING, E.FILL): S.FILLED,
}

_TERMINAL = frozenset({S.FILLED, S.CANCELLED, S.REJECTED, S.FAILED})
_WORKING = frozenset({S.OPEN, S.TRIGGER_PENDING, S.PARTIALLY_FILLED, S.CANCEL_PENDING})
_UNRESOLVED = frozenset({S.SUBMITTING, S.UNKNOWN})


def apply(status: OrderStatus, event: OrderEvent) -> OrderStatus:
    """The status after `event`, or `InvalidTransition` if the table has no such edge."""
    status, event = OrderStatus(status), OrderEvent(event)  # accept stored strings too
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise InvalidTransition(status, event) from None


def is_terminal(status: OrderStatus) -> bool:
    """No event can change this status any more."""
    return OrderStatus(status) in _TERMINAL


def is_working(status: OrderStatus) -> bool:
    """The broker holds the order and it can still fill."""
    return OrderStatus(status) in _WORKING


def needs_reconciliation(status: OrderStatus) -> bool:
    """We cannot tell whether the broker has it: look it up by ordertag before acting."""
    return OrderStatus(status) in _UNRESOLVED


# An entry filled this recently whose position is not written yet is still "on its way to a
# position" (the stream and the follower commit a fill, then open its position): the risk
# gate and the one-position rule count it.
FILL_TO_POSITION = timedelta(seconds=60)

# Average price kept to 1/100 paise: exact enough for P&L, bounded for the database.
AVG_PRICE_QUANTUM = Decimal("0.0001")


def apply_fill(
    filled_qty: int, avg_price: Decimal, fill_qty: int, fill_price: Decimal
) -> tuple[int, Decimal]:
    """Add one fill to an order's filled quantity and volume-weighted average price.

    `fill_qty` is the new fill only. Angel reports cumulative `filledshares`; the caller
    passes the increase, and skips the report when there is none.
    """
    _check_fill_args(filled_qty, avg_price, fill_qty, fill_price)
    new_qty = filled_qty + fill_qty
    notional = avg_price * filled_qty + fill_price * fill_qty
    return new_qty, (notional / new_qty).quantize(AVG_PRICE_QUANTUM)


def _check_fill_args(
    filled_qty: int, avg_price: Decimal, fill_qty: int, fill_price: Decimal
) -> None:
    for name, qty in (("filled_qty", filled_qty), ("fill_qty", fill_qty)):
        if not isinstance(qty, int) or isinstance(qty, bool):
            raise TypeError(f"{name} must be an int, got {type(qty).__name__}")
    for name, price in (("avg_price", avg_price), ("fill_price", fill_price)):
        if not isinstance(price, Decimal):
            raise TypeError(f"{name} must be a Decimal, got {type(price).__name__}")
        if not price.is_finite():
            raise ValueError(f"{name} must be a finite number, got {price}")
    if filled_qty < 0:
        raise ValueError(f"filled_qty must be >= 0, got {filled_qty}")
    if fill_qty <= 0:
        raise ValueError(f"fill_qty must be > 0, got {fill_qty}")
    if fill_price <= 0:
        raise ValueError(f"fill_price must be > 0, got {fill_price}")
    if filled_qty > 0 and avg_price <= 0:
        raise ValueError(f"avg_price must be > 0 once something is filled, got {avg_price}")
