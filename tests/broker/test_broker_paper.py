"""Paper trading: fills against the feed's price in Redis and against the simulator's quote."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
import redis

from ats_app.engine.broker.base import Contract, OrderRequest, OrderType, Product, Quote, Side
from ats_app.engine.broker.errors import OrderRejected
from ats_app.engine.broker.paper import PaperBroker, fill_price
from ats_app.engine.broker.prices import (
    BrokerPriceSource,
    FallbackPriceSource,
    PriceUnavailable,
    RedisPriceSource,
    SharedQuoteCache,
    read_tick,
    write_tick,
)
from ats_app.engine.core.fsm import OrderStatus
from tests.broker.conftest import BrokerKit

D = Decimal
OPT = Contract("NFO", "NIFTY26NOV2624000CE", "43650", 75, D("0.05"))
SBIN = Contract("NSE", "SBIN-EQ", "3045", 1, D("0.05"))


def paper(r: redis.Redis, slippage: int = 2, scope: str = "u1") -> PaperBroker:
    return PaperBroker(r, scope, RedisPriceSource(r), slippage_ticks=slippage)


def order(coid: str, side: Side = Side.BUY, qty: int = 75, **kw: object) -> OrderRequest:
    return OrderRequest(coid, OPT, side, qty, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("side", "touch", "ticks", "expected"), [
    pytest.param(Side.BUY, D("100.02"), 2, D("100.15"), id="buy-rounds-up"),
    pytest.param(Side.SELL, D("99.98"), 2, D("99.85"), id="sell-rounds-down"),
    pytest.param(Side.BUY, D("100.00"), 0, D("100.00"), id="no-slippage"),
])
def test_fill_price_is_tick_rounded_against_us(side: Side, touch: Decimal, ticks: int,
                                               expected: Decimal) -> None:
    q = Quote("NFO", "1", D("100"), bid=touch, ask=touch)
    assert fill_price(side, q, D("0.05"), ticks) == expected


def test_tick_roundtrip_and_staleness(rds: redis.Redis) -> None:
    write_tick(rds, "NFO", "43650", D("101.2"), bid=D("101.15"), ask=D("101.25"))
    q = read_tick(rds, "NFO", "43650")
    assert q is not None and (q.ltp, q.bid, q.ask) == (D("101.2"), D("101.15"), D("101.25"))
    write_tick(rds, "NFO", "43650", "101.2", at=time.time() - 60)
    assert read_tick(rds, "NFO", "43650") is None
    assert read_tick(rds, "NFO", "43650", max_age=None) is not None
    assert 0 < rds.ttl("ats:ltp:NFO:43650") <= 300


def test_market_orders_fill_at_ask_or_bid_plus_slippage(rds: redis.Redis) -> None:
    write_tick(rds, "NFO", "43650", "101.20", bid="101.15", ask="101.25")
    b = paper(rds)
    bought = b.place_order(order("p-buy", price=D("101.20")))
    assert (bought.status, bought.filled_quantity) == (OrderStatus.FILLED, 75)
    assert bought.average_price == D("101.35")  # ask + 2 ticks
    assert (bought.requested_price, bought.slippage) == (D("101.20"), D("0.15"))
    assert bought.charges is not None and D("20") < bought.charges < D("30")
    sold = b.place_order(order("p-sell", Side.SELL))
    assert sold.average_price == D("101.05")  # bid - 2 ticks
    assert (sold.requested_price, sold.slippage) == (D("101.20"), D("0.15"))  # vs the LTP
    [pos] = b.positions()
    assert pos.net_quantity == 0


def test_same_client_order_id_never_fills_twice_across_processes(rds: redis.Redis) -> None:
    write_tick(rds, "NFO", "43650", "101.20", bid="101.15", ask="101.25")
    first = paper(rds).place_order(order("p-dup"))
    write_tick(rds, "NFO", "43650", "150", bid="149.95", ask="150.05")
    other_process = paper(rds)
    again = other_process.place_order(order("p-dup"))
    assert again == first
    assert other_process.find_order("p-dup") == first
    [pos] = other_process.positions()
    assert (pos.net_quantity, pos.average_price) == (75, D("101.35"))
    assert paper(rds, scope="u2").find_order("p-dup") is None  # scopes are separate


def test_limit_order_rests_until_the_market_crosses(rds: redis.Redis) -> None:
    write_tick(rds, "NFO", "43650", "101.20", bid="101.15", ask="101.25")
    b = paper(rds)
    placed = b.place_order(order("p-lim", order_type=OrderType.LIMIT, price=D("100.00")))
    assert placed.status == OrderStatus.OPEN and placed.filled_quantity == 0
    assert b.find_order("p-lim").status == OrderStatus.OPEN
    write_tick(rds, "NFO", "43650", "99.90", bid="99.85", ask="99.95")
    filled = paper(rds).find_order("p-lim")
    assert filled.status == OrderStatus.FILLED
    assert filled.average_price == D("100.00")  # ask + 2 ticks = 100.05, capped at the limit
    assert b.cancel_order(filled.broker_order_id).status == OrderStatus.FILLED


def test_cancel_resting_limit(rds: redis.Redis) -> None:
    write_tick(rds, "NFO", "43650", "101.20", bid="101.15", ask="101.25")
    b = paper(rds)
    placed = b.place_order(order("p-can", Side.SELL, order_type=OrderType.LIMIT, price=D("110")))
    assert b.cancel_order(placed.broker_order_id).status == OrderStatus.CANCELLED
    write_tick(rds, "NFO", "43650", "120", bid="119.95", ask="120.05")
    assert b.find_order("p-can").status == OrderStatus.CANCELLED  # never fills afterwards


def test_no_price_no_order(rds: redis.Redis) -> None:
    b = paper(rds)
    with pytest.raises(PriceUnavailable):
        b.place_order(order("p-none"))
    assert b.find_order("p-none") is None
    with pytest.raises(OrderRejected, match="lot size"):
        write_tick(rds, "NFO", "43650", "100")
        b.place_order(order("p-lot", qty=70))


def test_paper_fills_against_the_simulator_quote_when_no_tick(kit: BrokerKit,
                                                               rds: redis.Redis) -> None:
    angel = kit.broker()
    kit.sim.control("POST", "/sim/price", {"token": "3045", "ltp": 950.0})
    q = kit.sim.control("GET", "/sim/quote/3045")
    prices = FallbackPriceSource(RedisPriceSource(rds), BrokerPriceSource(angel))
    b = PaperBroker(rds, "u1", prices, slippage_ticks=1)
    calls_before = len(kit.sim.server.state.orders.for_client("T1001"))
    filled = b.place_order(OrderRequest("p-sim", SBIN, Side.BUY, 10, product=Product.INTRADAY))
    assert filled.average_price == D(str(q["ask"])) + D("0.05")
    assert len(kit.sim.server.state.orders.for_client("T1001")) == calls_before == 0
    write_tick(rds, "NSE", "3045", "900", bid="899.95", ask="900.05")  # the feed wins
    assert b.place_order(OrderRequest("p-feed", SBIN, Side.BUY, 1)).average_price == D("900.10")


class _CountingSource:
    def __init__(self, price: str) -> None:
        self.calls = 0
        self.price = Decimal(price)

    def quote(self, contract: Contract) -> Quote:
        self.calls += 1
        return Quote(contract.exchange, contract.symboltoken, self.price,
                     bid=self.price - Decimal("0.05"), ask=self.price + Decimal("0.05"))


def test_a_burst_of_quotes_costs_one_broker_request_per_second(rds: redis.Redis) -> None:
    """Workers share a broker quote for QUOTE_CACHE_S (Angel allows 10 quotes/s)."""
    clock = [1000.0]
    broker = _CountingSource("101.25")
    other_server = _CountingSource("99.00")
    cache = SharedQuoteCache(rds, broker, "sim", max_age=1.0, now=lambda: clock[0])
    another_worker = SharedQuoteCache(rds, _CountingSource("0.05"), "sim", max_age=1.0,
                                      now=lambda: clock[0])
    assert cache.quote(SBIN).ask == Decimal("101.30")
    for _ in range(5):
        assert another_worker.quote(SBIN).ltp == Decimal("101.25")
    assert broker.calls == 1
    # Another price server's quotes are its own.
    assert SharedQuoteCache(rds, other_server, "angel", now=lambda: clock[0]).quote(SBIN).ltp \
        == Decimal("99.00")
    clock[0] += 1.5  # older than max_age: ask the broker again
    broker.price = Decimal("102")
    assert cache.quote(SBIN).ltp == Decimal("102") and broker.calls == 2
