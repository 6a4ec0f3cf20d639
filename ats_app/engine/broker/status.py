"""Angel One order-book / order-update `orderstatus` strings -> our order events.

Pure parsing, kept out of the state machine so the FSM never learns a broker's vocabulary.
Angel's strings vary in case and spacing between the REST order book and the socket, so
they are normalised before lookup. An unrecognised string maps to None: the caller audits
it and leaves the order alone rather than guessing.
"""

from __future__ import annotations

from ats_app.engine.core.fsm import OrderEvent

__all__ = ["from_angel_report", "from_angel_status", "normalise_status"]

E = OrderEvent

_ANGEL_STATUS: dict[str, OrderEvent] = {
    # Accepted and working, or on its way to the exchange: all "the broker has it".
    "open": E.ACCEPT,
    "open pending": E.ACCEPT,
    "validation pending": E.ACCEPT,
    "put order req received": E.ACCEPT,
    "after market order req received": E.ACCEPT,
    "amo req received": E.ACCEPT,
    # A modification changes price or quantity, not whether the order works.
    "modified": E.ACCEPT,
    "modify pending": E.ACCEPT,
    "modify validation pending": E.ACCEPT,
    "modify order req received": E.ACCEPT,
    "trigger pending": E.TRIGGER,
    "complete": E.FILL,
    "completed": E.FILL,
    "rejected": E.REJECT,
    "cancelled": E.CANCEL,
    "canceled": E.CANCEL,
    "cancel pending": E.CANCEL_REQUEST,
    "cancel order req received": E.CANCEL_REQUEST,
}

# Statuses under which a partly filled order keeps working.
_STILL_WORKING = frozenset({E.ACCEPT, E.TRIGGER})


def normalise_status(orderstatus: str) -> str:
    """Lower case, single spaces, no padding: "Trigger  Pending " -> "trigger pending"."""
    return " ".join(orderstatus.split()).lower()


def from_angel_status(orderstatus: str) -> OrderEvent | None:
    """The event an Angel `orderstatus` string reports, or None when we do not know it."""
    if not isinstance(orderstatus, str):
        return None
    return _ANGEL_STATUS.get(normalise_status(orderstatus))


def from_angel_report(orderstatus: str, filled_qty: int, quantity: int) -> OrderEvent | None:
    """Like `from_angel_status`, but reads a partial fill from the filled quantity.

    Angel keeps a partly filled order at "open" and reports the fill only in `filledshares`.
    """
    event = from_angel_status(orderstatus)
    if event in _STILL_WORKING and filled_qty > 0:
        return E.FILL if filled_qty >= quantity else E.PARTIAL_FILL
    return event
