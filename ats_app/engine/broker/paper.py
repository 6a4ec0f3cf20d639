"""Paper trading: the Broker interface filled against live prices, never an Angel order route.

Fills (per unit, then tick-rounded in the direction that hurts us):
- MARKET buys at the ask plus `slippage_ticks` ticks, sells at the bid minus them (the LTP
  when the price has no depth);
- LIMIT orders fill when the market crosses the limit (buy: ask <= limit; sell: bid >= limit)
  at the market price with slippage, never worse than the limit; otherwise they rest OPEN
  and are checked again whenever they are looked up (`find_order`, `orders`).

Orders live in Redis, one hash per scope (`ats:paper:orders:{scope}`), keyed by client order
id, so every process sees the same orders and a repeated `place_order` with the same id returns
the stored order instead of filling twice (HSETNX decides the race). Positions are summed from
the filled orders. Each order records the requested price, the fill price, the slippage
(positive = worse than requested) and the estimated charges.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import redis

from ats_app.engine.broker import charges
from ats_app.engine.broker.base import (
    BrokerOrder,
    BrokerPosition,
    ConnectionReport,
    Contract,
    OrderRequest,
    OrderType,
    Product,
    Quote,
    Side,
)
from ats_app.engine.broker.errors import OrderRejected
from ats_app.engine.broker.price_bands import band_kind, sl_limit_refusal, stop_triggered
from ats_app.engine.broker.prices import PriceSource, PriceUnavailable
from ats_app.engine.core.fsm import OrderStatus

__all__ = ["PaperBroker", "fill_price"]

_PREFIX = "paper-"
_MAX_COID = 20
_WORKING = (OrderStatus.OPEN.value, OrderStatus.TRIGGER_PENDING.value)

# Replace the stored order only if nobody changed it since we read it (two processes
# re-checking one resting LIMIT order must not both fill it).
_CAS = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
return 0
"""


def _round(price: Decimal, tick: Decimal, up: bool) -> Decimal:
    steps = (price / tick).to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR)
    return (steps * tick).quantize(tick)


def fill_price(side: Side, quote: Quote, tick: Decimal, slippage_ticks: int,
               limit: Decimal | None = None) -> Decimal | None:
    """The fill price for `side` against `quote`, or None when a LIMIT is not crossed."""
    buy = side == Side.BUY
    touch = (quote.ask if buy else quote.bid) or quote.ltp
    if limit is not None and (touch > limit if buy else touch < limit):
        return None
    slip = tick * slippage_ticks
    price = _round(touch + slip if buy else touch - slip, tick, up=buy)
    if limit is not None:
        price = min(price, limit) if buy else max(price, limit)
    return max(price, tick)


@dataclass(frozen=True)
class _Paper:
    """What the hash stores per order (JSON)."""

    request: dict[str, Any]
    status: str
    filled: int
    fill_price: str | None
    requested_price: str | None
    slippage: str | None
    charges: str | None
    reason: str | None
    updated_at: float


class PaperBroker:
    """`Broker` that fills against a `PriceSource`. `scope` separates users / accounts."""

    def __init__(self, r: redis.Redis, scope: str, prices: PriceSource, *,
                 slippage_ticks: int = 1, clock: Callable[[], float] = time.time) -> None:
        if slippage_ticks < 0:
            raise ValueError("slippage_ticks must be >= 0")
        self._redis = r
        self.scope = scope
        self.prices = prices
        self.slippage_ticks = slippage_ticks
        self._clock = clock
        self._key = f"ats:paper:orders:{scope}"
        self._cas = r.register_script(_CAS)

    @property
    def is_paper(self) -> bool:
        return True

    # ------------------------------------------------------------------ storage

    def _get_raw(self, coid: str) -> bytes | None:
        return self._redis.hget(self._key, coid)  # type: ignore[return-value]

    @staticmethod
    def _request(rec: _Paper) -> OrderRequest:
        q = rec.request
        c = q["contract"]
        return OrderRequest(
            client_order_id=q["client_order_id"],
            contract=Contract(c["exchange"], c["tradingsymbol"], c["symboltoken"],
                              int(c["lot_size"]), Decimal(c["tick_size"])),
            side=Side(q["side"]), quantity=int(q["quantity"]),
            order_type=OrderType(q["order_type"]), product=Product(q["product"]),
            price=Decimal(q["price"]) if q.get("price") is not None else None,
            trigger_price=Decimal(q["trigger_price"]) if q.get("trigger_price") else None)

    @staticmethod
    def _view(rec: _Paper) -> BrokerOrder:
        q = rec.request
        return BrokerOrder(
            client_order_id=q["client_order_id"], broker_order_id=_PREFIX + q["client_order_id"],
            status=OrderStatus(rec.status), quantity=int(q["quantity"]),
            filled_quantity=rec.filled,
            average_price=Decimal(rec.fill_price) if rec.fill_price else None,
            reason=rec.reason, updated_at=datetime.fromtimestamp(rec.updated_at, UTC),
            requested_price=Decimal(rec.requested_price) if rec.requested_price else None,
            slippage=Decimal(rec.slippage) if rec.slippage else None,
            charges=Decimal(rec.charges) if rec.charges else None)

    def _evaluate(self, req: OrderRequest, rec: _Paper) -> _Paper:
        """Try to trigger / fill a new or working order against the current price."""
        quote = self.prices.quote(req.contract)
        now = self._clock()
        if rec.status == OrderStatus.TRIGGER_PENDING.value:
            assert req.trigger_price is not None
            if not stop_triggered(req.side.value, quote.ltp, req.trigger_price):
                return _Paper(**{**rec.__dict__, "updated_at": now})
        limit = req.price if req.order_type != OrderType.MARKET else None
        price = fill_price(req.side, quote, req.contract.tick_size, self.slippage_ticks, limit)
        if price is None:
            return _Paper(rec.request, OrderStatus.OPEN.value, 0, None, rec.requested_price,
                          None, None, None, now)
        requested = Decimal(rec.requested_price) if rec.requested_price else quote.ltp
        slip = price - requested if req.side == Side.BUY else requested - price
        cost = charges.estimate(charges.segment_for(req.contract, req.product), req.side, price,
                                req.quantity).total
        return _Paper(rec.request, OrderStatus.FILLED.value, req.quantity, str(price),
                      str(requested), str(slip), str(cost), None, now)

    @staticmethod
    def _check(request: OrderRequest) -> None:
        """The refusals a broker answers at once: nothing is stored."""
        if request.quantity <= 0 or request.quantity % request.contract.lot_size:
            raise OrderRejected(f"quantity {request.quantity} is not a positive multiple of the "
                                f"lot size {request.contract.lot_size}")
        if request.order_type != OrderType.MARKET and not (request.price and request.price > 0):
            raise OrderRejected(f"a {request.order_type.value} order needs a positive price")
        if request.order_type != OrderType.STOPLOSS_LIMIT:
            return
        if not (request.trigger_price and request.trigger_price > 0):
            raise OrderRejected("a STOPLOSS_LIMIT order needs a positive trigger price")
        assert request.price is not None
        c = request.contract
        refusal = sl_limit_refusal(request.side.value, request.trigger_price, request.price,
                                   band_kind(c.exchange, c.tradingsymbol))
        if refusal:
            raise OrderRejected(refusal, broker_message=refusal)

    @staticmethod
    def _stored(request: OrderRequest) -> dict[str, Any]:
        c = request.contract
        return {
            "client_order_id": request.client_order_id, "side": request.side.value,
            "quantity": request.quantity, "order_type": request.order_type.value,
            "product": request.product.value,
            "price": str(request.price) if request.price is not None else None,
            "trigger_price": str(request.trigger_price)
            if request.order_type == OrderType.STOPLOSS_LIMIT else None,
            "contract": {"exchange": c.exchange, "tradingsymbol": c.tradingsymbol,
                         "symboltoken": c.symboltoken, "lot_size": c.lot_size,
                         "tick_size": str(c.tick_size)},
        }

    @staticmethod
    def _requested(request: OrderRequest) -> str | None:
        """What the order asked for: a stop's trigger, else its (limit or signal) price."""
        if request.order_type == OrderType.STOPLOSS_LIMIT:
            return str(request.trigger_price)
        return str(request.price) if request.price is not None else None

    # ------------------------------------------------------------------ Broker

    def place_order(self, request: OrderRequest) -> BrokerOrder:
        coid = request.client_order_id
        if not coid or len(coid) > _MAX_COID:
            raise OrderRejected(f"client order id must be 1-{_MAX_COID} characters, got {coid!r}")
        self._check(request)
        status = OrderStatus.TRIGGER_PENDING if request.order_type == OrderType.STOPLOSS_LIMIT \
            else OrderStatus.OPEN
        pending = _Paper(self._stored(request), status.value, 0, None, self._requested(request),
                         None, None, None, self._clock())
        rec = self._evaluate(request, pending)
        # Placed already (a rerun, or another process first): that order stands, as at a
        # broker that refuses a duplicate tag. No look first: one round trip per new order.
        if not self._redis.hsetnx(self._key, coid, json.dumps(rec.__dict__)):
            found = self.find_order(coid)
            assert found is not None
            return found
        return self._view(rec)

    def _refresh(self, raw: bytes) -> BrokerOrder:
        rec = _Paper(**json.loads(raw))
        if rec.status not in _WORKING:
            return self._view(rec)
        req = self._request(rec)
        new = self._evaluate(req, rec)
        if new.status == rec.status:
            return self._view(rec)
        if self._cas(keys=[self._key], args=[req.client_order_id, raw, json.dumps(new.__dict__)]):
            return self._view(new)
        again = self._get_raw(req.client_order_id)  # someone else changed it: theirs stands
        return self._view(_Paper(**json.loads(again))) if again else self._view(rec)

    def find_order(self, client_order_id: str) -> BrokerOrder | None:
        raw = self._get_raw(client_order_id)
        return self._refresh(raw) if raw is not None else None

    def orders(self) -> list[BrokerOrder]:
        raws = self._redis.hvals(self._key)
        return sorted((self._refresh(raw) for raw in raws),  # type: ignore[union-attr]
                      key=lambda o: o.updated_at or datetime.min.replace(tzinfo=UTC))

    def _change(self, broker_order_id: str, verb: str,
                change: Callable[[OrderRequest, _Paper], _Paper]) -> BrokerOrder:
        """Apply `change` to a working order with compare-and-set, retried only when a
        concurrent fill check changed it under us. A final order is returned as it is (a
        cancel) or refused (a modify)."""
        coid = broker_order_id.removeprefix(_PREFIX)
        for _ in range(5):
            raw = self._get_raw(coid)
            if raw is None:
                raise OrderRejected(f"paper order {broker_order_id} not found")
            rec = _Paper(**json.loads(raw))
            if rec.status not in _WORKING:
                if verb == "modify":  # Angel's answer to a modify of a final order
                    raise OrderRejected(f"Order cannot be modified as it is {rec.status}")
                return self._view(rec)
            new = change(self._request(rec), rec)
            if self._cas(keys=[self._key], args=[coid, raw, json.dumps(new.__dict__)]):
                return self._view(new)
        raise OrderRejected(f"paper order {broker_order_id} kept changing; {verb} not applied")

    def cancel_order(self, broker_order_id: str, variety: str = "NORMAL") -> BrokerOrder:
        """Cancel a working order; one the market has already filled (a stop whose trigger
        was crossed since it was last looked at) fills instead. The final view either way.
        Paper keeps no varieties: `variety` is Angel's and only accepted here."""

        def cancel(req: OrderRequest, rec: _Paper) -> _Paper:
            try:
                now = self._evaluate(req, rec)
            except PriceUnavailable:  # no price, no fill to find: a broker still cancels
                now = rec
            if now.status == OrderStatus.FILLED.value:
                return now
            return _Paper(**{**rec.__dict__, "status": OrderStatus.CANCELLED.value,
                             "updated_at": self._clock()})

        return self._change(broker_order_id, "cancel", cancel)

    def modify_order(self, broker_order_id: str, request: OrderRequest) -> BrokerOrder:
        """Move a TRIGGER_PENDING or OPEN order to `request`'s price, trigger and quantity
        (same instrument, side and product), then evaluate it: a stop moved through the
        market triggers at once. Refused (`OrderRejected`) once the order is final."""
        self._check(request)

        def modify(old: OrderRequest, rec: _Paper) -> _Paper:
            if (old.contract.symboltoken, old.side, old.product, old.order_type) != (
                    request.contract.symboltoken, request.side, request.product,
                    request.order_type):
                raise OrderRejected(f"paper order {broker_order_id}: a modify may change price, "
                                    f"trigger and quantity only")
            stored = {**self._stored(request), "client_order_id": old.client_order_id}
            moved = _Paper(**{**rec.__dict__, "request": stored,
                              "requested_price": self._requested(request),
                              "updated_at": self._clock()})
            return self._evaluate(self._request(moved), moved)

        return self._change(broker_order_id, "modify", modify)

    def positions(self) -> list[BrokerPosition]:
        """Net quantity and average open price per instrument, from the filled orders."""
        book: dict[tuple[str, str], dict[str, Any]] = {}
        recs = [_Paper(**json.loads(raw)) for raw in self._redis.hvals(self._key)]  # type: ignore[union-attr]
        for rec in sorted(recs, key=lambda r: r.updated_at):  # fills in the order they happened
            if not rec.filled or not rec.fill_price:
                continue
            c = rec.request["contract"]
            pos = book.setdefault((c["exchange"], c["symboltoken"]), {
                "symbol": c["tradingsymbol"], "net": 0, "avg": Decimal(0), "t": rec.updated_at})
            qty = rec.filled if rec.request["side"] == Side.BUY.value else -rec.filled
            price = Decimal(rec.fill_price)
            net = pos["net"]
            if net == 0 or (net > 0) == (qty > 0):  # opening or adding: weighted average
                pos["avg"] = (pos["avg"] * abs(net) + price * abs(qty)) / (abs(net) + abs(qty))
            elif abs(qty) > abs(net):  # reversing through zero: the remainder opens at price
                pos["avg"] = price
            pos["net"] = net + qty
            if pos["net"] == 0:
                pos["avg"] = Decimal(0)
        return [BrokerPosition(exchange=ex, tradingsymbol=p["symbol"], symboltoken=tok,
                               net_quantity=p["net"],
                               average_price=p["avg"].quantize(Decimal("0.0001"))
                               if p["net"] else None)
                for (ex, tok), p in book.items()]

    def quote(self, contract: Contract) -> Quote:
        return self.prices.quote(contract)

    def test_connection(self) -> ConnectionReport:
        return ConnectionReport(ok=True, message="Paper trading: no broker connection needed")
