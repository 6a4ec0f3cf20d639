"""Order book and matching: validation, accept-then-risk-check, fills at the touch."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

# The exchange's SL-limit rules, the one module of ours the simulator takes (pure): paper
# trading applies the very same ones, so both refuse and trigger alike.
from ats_app.engine.broker.price_bands import band_kind, sl_limit_refusal, stop_triggered
from ats_app.simulator.clock import Clock, angel_time, nse_open
from ats_app.simulator.market import Market, Quote
from ats_app.simulator.positions import Positions
from ats_app.simulator.scripmaster import Instrument

VARIETIES = ("NORMAL", "STOPLOSS", "AMO", "ROBO")
ORDER_TYPES = ("MARKET", "LIMIT", "STOPLOSS_LIMIT", "STOPLOSS_MARKET")
PRODUCTS = ("DELIVERY", "CARRYFORWARD", "MARGIN", "INTRADAY", "BO")
EXCHANGES = ("NSE", "NFO", "BSE", "BFO", "MCX", "CDS")
MAX_ORDERTAG = 20

# Order-update socket status codes from Angel's documentation.
STATUS_CODES = {
    "open": "AB01", "cancelled": "AB02", "rejected": "AB03", "modified": "AB04",
    "complete": "AB05", "after market order req received": "AB06", "open pending": "AB09",
    "trigger pending": "AB10",
}
# Codes for which Angel's documented meaning is known are used; AB2000 ("error not specified")
# stands in for field errors whose exact code Angel does not publish.
ERR_VARIETY, ERR_SYMBOL, ERR_PRODUCT, ERR_ORDER_NOT_FOUND = "AB1008", "AB1009", "AB1012", "AB1013"
ERR_ORDERTAG, ERR_FIELD = "AB4008", "AB2000"

OrderEvent = Callable[[str, dict[str, Any], str], None]


@dataclass
class Order:
    orderid: str
    uniqueorderid: str
    client_code: str
    inst: Instrument
    variety: str
    ordertype: str
    producttype: str
    duration: str
    transactiontype: str
    quantity: int
    price: float
    triggerprice: float
    ordertag: str
    status: str = "open pending"
    text: str = ""
    filled: int = 0
    averageprice: float = 0.0
    updatetime: str = ""
    forced_reject: str = ""  # set by the "reject" fault: rejected at the risk check
    squareoff: float = 0.0
    stoploss: float = 0.0
    cancelled: int = 0
    source_ip: str = ""  # the client address it came from (tests check per-account egress)
    fill_after: float = 0.0  # monotonic time before which an open order is not filled

    def book_row(self) -> dict[str, Any]:
        inst = self.inst
        return {
            "variety": self.variety, "ordertype": self.ordertype,
            "producttype": self.producttype, "duration": self.duration, "price": self.price,
            "triggerprice": self.triggerprice, "quantity": str(self.quantity),
            "disclosedquantity": "0", "squareoff": self.squareoff, "stoploss": self.stoploss,
            "trailingstoploss": 0.0, "tradingsymbol": inst.symbol,
            "transactiontype": self.transactiontype, "exchange": inst.exch_seg,
            "symboltoken": inst.token, "ordertag": self.ordertag,
            "instrumenttype": inst.instrumenttype, "strikeprice": inst.strike,
            "optiontype": inst.option_type, "expirydate": inst.expiry_text,
            "lotsize": str(inst.lotsize), "cancelsize": str(self.cancelled),
            "averageprice": self.averageprice, "filledshares": str(self.filled),
            "unfilledshares": str(self.quantity - self.filled - self.cancelled),
            "orderid": self.orderid, "text": self.text, "status": self.status,
            "orderstatus": self.status, "updatetime": self.updatetime,
            "exchtime": self.updatetime, "exchorderupdatetime": self.updatetime,
            "fillid": "", "filltime": "", "parentorderid": "",
            "uniqueorderid": self.uniqueorderid, "exchangeorderid": "",
        }


def _num(value: Any, default: float = 0.0) -> float:
    if value in (None, ""):
        return default
    return float(value)


def _rupees(value: float) -> Decimal:
    return Decimal(f"{value:.2f}")


def lpp_refusal(order: Order) -> str | None:
    """The exchange's refusal of an SL-limit order's limit vs trigger, or None."""
    if order.ordertype != "STOPLOSS_LIMIT":
        return None
    return sl_limit_refusal(order.transactiontype, _rupees(order.triggerprice),
                            _rupees(order.price), band_kind(order.inst.exch_seg,
                                                            order.inst.symbol))


class OrderBook:
    def __init__(self, market: Market, clock: Clock, positions: Positions,
                 nse_hours: bool, on_event: OrderEvent,
                 fill_delay: Callable[[], float] = lambda: 0.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.market = market
        self.clock = clock
        self.positions = positions
        self.nse_hours = nse_hours
        self.on_event = on_event
        self.fill_delay = fill_delay  # the latency profile's pause from acceptance to fill
        self.monotonic = monotonic
        self.orders: dict[str, Order] = {}
        self.trades: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    # --- synchronous validation (answered in the placeOrder response) ----------------------
    def validate(self, p: dict[str, Any]) -> tuple[str, str] | Instrument:
        if len(str(p.get("ordertag") or "")) > MAX_ORDERTAG:
            return ERR_ORDERTAG, "ordertag length should be less than 20 characters"
        if p.get("variety") not in VARIETIES:
            return ERR_VARIETY, "Invalid Order Variety"
        inst = self.market.master.get(str(p.get("symboltoken", "")))
        if (inst is None or p.get("exchange") != inst.exch_seg
                or str(p.get("tradingsymbol", "")).upper() != inst.symbol.upper()):
            return ERR_SYMBOL, "Symbol Not Found"
        if p.get("producttype") not in PRODUCTS:
            return ERR_PRODUCT, "Invalid Product Type"
        checks = (
            (p.get("transactiontype") in ("BUY", "SELL"), "Invalid Transaction Type"),
            (p.get("ordertype") in ORDER_TYPES, "Invalid Order Type"),
            (p.get("duration", "DAY") in ("DAY", "IOC"), "Invalid Duration"),
        )
        for ok, message in checks:
            if not ok:
                return ERR_FIELD, message
        try:
            qty, price, trig = int(str(p.get("quantity"))), _num(p.get("price")), \
                _num(p.get("triggerprice"))
        except ValueError:
            return ERR_FIELD, "Invalid Quantity or Price"
        if qty <= 0:
            return ERR_FIELD, "Invalid Quantity"
        if p["ordertype"] in ("LIMIT", "STOPLOSS_LIMIT") and price <= 0:
            return ERR_FIELD, "Invalid Price"
        if p["ordertype"].startswith("STOPLOSS") and trig <= 0:
            return ERR_FIELD, "Invalid Trigger Price"
        return inst

    def place(self, client: str, p: dict[str, Any], inst: Instrument,
              forced_reject: str = "", source_ip: str = "") -> Order:
        n = next(self._ids)
        order = Order(
            orderid=f"2611{n:011d}", uniqueorderid=f"sim-{n:08d}-{client.lower()}",
            client_code=client, inst=inst, variety=p["variety"], ordertype=p["ordertype"],
            producttype=p["producttype"], duration=p.get("duration", "DAY"),
            transactiontype=p["transactiontype"], quantity=int(str(p["quantity"])),
            price=_num(p.get("price")), triggerprice=_num(p.get("triggerprice")),
            ordertag=str(p.get("ordertag") or ""), forced_reject=forced_reject,
            squareoff=_num(p.get("squareoff")), stoploss=_num(p.get("stoploss")),
            source_ip=source_ip,
        )
        self.orders[order.orderid] = order
        self._set(order, "open pending")
        return order

    def _set(self, order: Order, status: str, text: str = "") -> None:
        order.status, order.text = status, text or order.text
        order.updatetime = angel_time(self.clock.now())
        self.on_event(order.client_code, order.book_row(), STATUS_CODES.get(status, "AB00"))

    def for_client(self, client: str) -> list[Order]:
        return [o for o in self.orders.values() if o.client_code == client]

    def find(self, client: str, order_id: str) -> Order | None:
        o = self.orders.get(order_id)
        if o is None:
            o = next((x for x in self.orders.values() if x.uniqueorderid == order_id), None)
        return o if o is not None and o.client_code == client else None

    # --- modify / cancel -------------------------------------------------------------------
    def modify(self, order: Order, p: dict[str, Any]) -> str | None:
        if order.status not in ("open", "trigger pending", "open pending",
                                "after market order req received"):
            return f"Order cannot be modified as it is {order.status}"
        try:
            quantity = int(str(p["quantity"])) if p.get("quantity") not in (None, "") \
                else order.quantity
            price = _num(p.get("price"), order.price)
            trigger = _num(p.get("triggerprice"), order.triggerprice)
        except ValueError:
            return "Invalid Quantity or Price"
        ordertype = p["ordertype"] if p.get("ordertype") in ORDER_TYPES else order.ordertype
        if quantity <= 0 or (ordertype in ("LIMIT", "STOPLOSS_LIMIT") and price <= 0) or (
                ordertype.startswith("STOPLOSS") and trigger <= 0):
            return "Invalid Quantity or Price"
        # The exchange checks a modification like a new order; refused, the order keeps
        # working unchanged.
        moved = replace(order, quantity=quantity, price=price, triggerprice=trigger,
                        ordertype=ordertype)
        refusal = lpp_refusal(moved)
        if refusal:
            return refusal
        order.quantity, order.price, order.triggerprice, order.ordertype = \
            quantity, price, trigger, ordertype
        status = order.status
        self._set(order, "modified")
        # "modified" is an event, not a state: the order keeps working as it was, and says so
        # (a trigger-pending stop must not read as an open, triggered one afterwards).
        self._set(order, status)
        return None

    def cancel(self, order: Order) -> str | None:
        # What the exchange did before the cancel arrived comes first: a stop whose trigger
        # has traded (or a limit the market has crossed) since the last pass fills now.
        if order.status == "trigger pending":
            self._try_trigger(order)
        elif order.status == "open" and self.monotonic() >= order.fill_after:
            self._try_fill(order)
        if order.status not in ("open", "trigger pending", "open pending",
                                "after market order req received"):
            return f"Order cannot be cancelled as it is {order.status}"
        order.cancelled = order.quantity - order.filled
        self._set(order, "cancelled")
        return None

    # --- the engine pass -------------------------------------------------------------------
    def process(self) -> None:
        market_open = not self.nse_hours or nse_open(self.clock.now())
        for order in list(self.orders.values()):
            if order.status == "open pending":
                self._admit(order, market_open)
            elif order.status == "after market order req received" and market_open:
                order.status = "open pending"
                self._admit(order, market_open)
            elif order.status == "trigger pending":
                self._try_trigger(order)
            elif order.status == "open" and self.monotonic() >= order.fill_after:
                self._try_fill(order)

    def _admit(self, order: Order, market_open: bool) -> None:
        """Risk checks a moment after acceptance: this is where "success" can still fail."""
        inst = order.inst
        q = self.market.quote(inst.token)
        if order.forced_reject:
            return self._set(order, "rejected", order.forced_reject)
        if not market_open:
            if order.variety == "AMO":
                return self._set(order, "after market order req received")
            return self._set(order, "rejected",
                             "Your order has been rejected as the market is closed. "
                             "Place an AMO order instead.")
        if order.quantity % inst.lotsize:
            return self._set(order, "rejected",
                             f"Quantity should be in multiples of lot size {inst.lotsize}")
        for px in (order.price, order.triggerprice):
            if px and round(px * 100) % inst.tick_paise:
                return self._set(order, "rejected",
                                 f"Price should be in multiples of tick size "
                                 f"{inst.tick_paise / 100:.2f}")
        if q is None:
            return self._set(order, "rejected", "Symbol Not Found")
        refusal = lpp_refusal(order)
        if refusal:
            return self._set(order, "rejected", refusal)
        est = (q.ask if order.transactiontype == "BUY" else q.bid) / 100.0
        if order.ordertype in ("LIMIT", "STOPLOSS_LIMIT"):
            est = order.price
        need = self.positions.margin_needed(order.client_code, inst, order.producttype,
                                            order.transactiontype, order.quantity, est)
        avail = self.positions.available(order.client_code)
        if need > avail + 1e-9:
            return self._set(order, "rejected",
                             f"Your order has been rejected due to Insufficient Funds. "
                             f"Available funds - Rs. {avail:.2f} . You require Rs. "
                             f"{need:.2f} funds to execute this order.")
        if order.ordertype.startswith("STOPLOSS"):
            return self._set(order, "trigger pending")
        self._open(order, q)

    def _open(self, order: Order, q: Quote) -> None:
        """At the exchange: filled now, or, under a latency profile, on a later pass."""
        order.fill_after = self.monotonic() + self.fill_delay()
        self._set(order, "open")
        if self.monotonic() >= order.fill_after:
            self._try_fill(order, q)

    def _try_trigger(self, order: Order) -> None:
        q = self.market.quote(order.inst.token)
        if q is None:
            return
        if stop_triggered(order.transactiontype, Decimal(q.ltp) / 100,
                          _rupees(order.triggerprice)):
            self._open(order, q)

    def _try_fill(self, order: Order, q: Quote | None = None) -> None:
        q = q or self.market.quote(order.inst.token)
        if q is None:
            return
        buy = order.transactiontype == "BUY"
        touch = (q.ask if buy else q.bid) / 100.0
        if order.ordertype in ("LIMIT", "STOPLOSS_LIMIT"):
            crossed = touch <= order.price if buy else touch >= order.price
            if not crossed:
                if order.duration == "IOC":
                    order.cancelled = order.quantity
                    self._set(order, "cancelled", "IOC order cancelled: not crossed")
                return
            fill = min(touch, order.price) if buy else max(touch, order.price)
        else:
            fill = touch
        qty = order.quantity - order.filled
        order.filled, order.averageprice = order.quantity, round(fill, 2)
        self.positions.fill(order.client_code, order.inst, order.producttype, buy, qty, fill,
                            q.ltp / 100.0)
        self.trades.append(self._trade_row(order, qty, fill))
        self._set(order, "complete")

    def _trade_row(self, order: Order, qty: int, fill: float) -> dict[str, Any]:
        inst = order.inst
        return {
            "exchange": inst.exch_seg, "producttype": order.producttype,
            "tradingsymbol": inst.symbol, "instrumenttype": inst.instrumenttype,
            "symbolgroup": "XX", "strikeprice": str(inst.strike), "optiontype": inst.option_type,
            "expirydate": inst.expiry_text, "marketlot": str(inst.lotsize), "precision": "2",
            "multiplier": "-1", "tradevalue": round(fill * qty, 2),
            "transactiontype": order.transactiontype, "fillprice": round(fill, 2),
            "fillsize": str(qty), "orderid": order.orderid,
            "fillid": f"{len(self.trades) + 1:08d}", "filltime": self.clock.now().strftime(
                "%H:%M:%S"), "client_code": order.client_code, "ordertag": order.ordertag,
        }
