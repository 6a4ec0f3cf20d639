"""The broker interface. Callers see only these objects and `broker.errors`, never SDK dicts.

Every order carries our client order id, sent to Angel as `ordertag`, so an unknown outcome
can be resolved by looking the order up instead of resending it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable

from ats_app.engine.core.fsm import OrderStatus


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    # A resting stop: parked at the broker until the price trades through `trigger_price`,
    # then a LIMIT order at `price` (Angel's variety STOPLOSS).
    STOPLOSS_LIMIT = "STOPLOSS_LIMIT"


class Product(StrEnum):
    INTRADAY = "INTRADAY"
    CARRYFORWARD = "CARRYFORWARD"
    DELIVERY = "DELIVERY"


@dataclass(frozen=True)
class Contract:
    """One tradable instrument, as resolved from the scrip master."""

    exchange: str  # NSE, NFO, BSE, BFO, MCX, CDS
    tradingsymbol: str
    symboltoken: str
    lot_size: int
    tick_size: Decimal


@dataclass(frozen=True)
class OrderRequest:
    client_order_id: str  # <= 20 chars; Angel's ordertag
    contract: Contract
    side: Side
    quantity: int  # units (lots x lot size), never lots
    order_type: OrderType = OrderType.MARKET
    product: Product = Product.INTRADAY
    price: Decimal | None = None  # LIMIT price; for MARKET the price the signal saw (if any)
    trigger_price: Decimal | None = None  # STOPLOSS_LIMIT only

    @property
    def variety(self) -> str:
        """Angel's order variety: stop orders are their own (placed, modified, cancelled)."""
        return "STOPLOSS" if self.order_type == OrderType.STOPLOSS_LIMIT else "NORMAL"


@dataclass(frozen=True)
class BrokerOrder:
    """The broker's view of one of our orders."""

    client_order_id: str
    broker_order_id: str | None
    status: OrderStatus
    quantity: int
    filled_quantity: int = 0
    average_price: Decimal | None = None
    reason: str | None = None  # the broker's own text, verbatim (rejections)
    updated_at: datetime | None = None
    # Paper fills fill these in (live orders leave them None: the pipeline knows its own
    # requested price, and Angel's charges come on the contract note).
    requested_price: Decimal | None = None  # the price the order asked for / the signal saw
    slippage: Decimal | None = None  # per unit, positive = worse than requested
    charges: Decimal | None = None  # estimated charges for this order's fill (charges.py)


@dataclass(frozen=True)
class Quote:
    exchange: str
    symboltoken: str
    ltp: Decimal
    bid: Decimal | None = None
    ask: Decimal | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class BrokerPosition:
    exchange: str
    tradingsymbol: str
    symboltoken: str
    net_quantity: int
    average_price: Decimal | None


@dataclass(frozen=True)
class ConnectionReport:
    ok: bool
    message: str  # success text, or the broker's exact error
    client_id: str | None = None
    egress_ip: str | None = None  # the address orders leave from, when known


@runtime_checkable
class Broker(Protocol):
    """One account's broker. Implementations: `angel.AngelBroker`, `paper.PaperBroker`.

    place_order raises `errors.UnknownOutcome` when the request may have reached the broker
    but no answer came back; the caller then calls `find_order` (by client order id) and
    never sends the same order again.
    """

    @property
    def is_paper(self) -> bool: ...

    def place_order(self, request: OrderRequest) -> BrokerOrder: ...

    def cancel_order(self, broker_order_id: str, variety: str = "NORMAL") -> BrokerOrder: ...

    def modify_order(self, broker_order_id: str, request: OrderRequest) -> BrokerOrder:
        """Move a working (or trigger-pending) order to `request`'s price, trigger and
        quantity; the broker's view afterwards. Refused (`OrderRejected`) once it is final."""
        ...

    def find_order(self, client_order_id: str) -> BrokerOrder | None: ...

    def positions(self) -> list[BrokerPosition]: ...

    def quote(self, contract: Contract) -> Quote: ...

    def test_connection(self) -> ConnectionReport: ...
