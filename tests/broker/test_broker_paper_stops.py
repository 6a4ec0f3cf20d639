"""Paper trading's resting stops (STOPLOSS_LIMIT): trigger, fill as a limit, modify, cancel,
the exchange's refusals; prices from the feed's ticks in a real Redis."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
import redis

from ats_app.engine.broker.base import Contract, OrderRequest, OrderType, Quote, Side
from ats_app.engine.broker.errors import OrderRejected
from ats_app.engine.broker.paper import PaperBroker
from ats_app.engine.broker.price_bands import LPP_TEXT
from ats_app.engine.broker.prices import RedisPriceSource, write_tick
from ats_app.engine.core.fsm import OrderStatus

D = Decimal
OPT = Contract("NFO", "NIFTY26NOV2624000CE", "43650", 75, D("0.05"))


def paper(r: redis.Redis) -> PaperBroker:
    return PaperBroker(r, "u1", RedisPriceSource(r), slippage_ticks=2)


def tick(r: redis.Redis, ltp: str) -> None:
    """A tick with a one-tick spread each side of `ltp`."""
    p = D(ltp)
    write_tick(r, "NFO", "43650", p, bid=p - D("0.05"), ask=p + D("0.05"))


def stop(coid: str, trigger: str, limit: str, qty: int = 75) -> OrderRequest:
    return OrderRequest(coid, OPT, Side.SELL, qty, order_type=OrderType.STOPLOSS_LIMIT,
                        price=D(limit), trigger_price=D(trigger))


def test_a_stop_rests_until_the_ltp_crosses_then_fills_like_a_limit(rds: redis.Redis) -> None:
    tick(rds, "101.20")
    b = paper(rds)
    b.place_order(OrderRequest("p-entry", OPT, Side.BUY, 75))
    placed = b.place_order(stop("p-stop", "95", "90"))
    assert (placed.status, placed.filled_quantity) == (OrderStatus.TRIGGER_PENDING, 0)
    assert placed.requested_price == D("95")  # a stop asks for its trigger
    tick(rds, "95.05")
    assert b.find_order("p-stop").status == OrderStatus.TRIGGER_PENDING
    tick(rds, "94.90")  # traded through the trigger: a sell limit at 90, bid 94.85
    filled = paper(rds).find_order("p-stop")  # any process sees it
    assert filled.status == OrderStatus.FILLED and filled.filled_quantity == 75
    assert filled.average_price == D("94.75")  # bid - 2 ticks, above the limit
    assert filled.slippage == D("0.25")  # vs the trigger
    assert {o.client_order_id: o.status for o in b.orders()}["p-stop"] == OrderStatus.FILLED
    [pos] = b.positions()
    assert pos.net_quantity == 0  # the stop closed the long


def test_a_gap_through_the_limit_leaves_it_open_and_never_fills_worse(rds: redis.Redis) -> None:
    tick(rds, "101.20")
    b = paper(rds)
    b.place_order(stop("p-gap", "95", "93"))
    tick(rds, "92.00")  # triggered, but the bid is below the limit
    assert b.find_order("p-gap").status == OrderStatus.OPEN
    tick(rds, "90.00")
    assert b.find_order("p-gap").status == OrderStatus.OPEN  # triggered once is enough
    tick(rds, "93.10")  # bid 93.05, less 2 ticks = 92.95: capped at the limit
    filled = b.find_order("p-gap")
    assert (filled.status, filled.average_price) == (OrderStatus.FILLED, D("93"))


def test_a_stop_placed_through_the_market_triggers_at_once(rds: redis.Redis) -> None:
    tick(rds, "101.20")
    placed = paper(rds).place_order(stop("p-now", "102", "100"))
    assert (placed.status, placed.average_price) == (OrderStatus.FILLED, D("101.05"))


def test_refused_stops_are_never_stored(rds: redis.Redis) -> None:
    tick(rds, "101.20")
    b = paper(rds)
    with pytest.raises(OrderRejected) as lpp:
        b.place_order(stop("p-lpp", "95", "75.95"))  # options: 20 % of 95 = Rs 19
    assert str(lpp.value).startswith(LPP_TEXT) and lpp.value.broker_message == str(lpp.value)
    with pytest.raises(OrderRejected, match="greater than or equal to the limit"):
        b.place_order(stop("p-side", "95", "96"))
    with pytest.raises(OrderRejected, match="positive trigger price"):
        b.place_order(OrderRequest("p-notrig", OPT, Side.SELL, 75,
                                   order_type=OrderType.STOPLOSS_LIMIT, price=D("90")))
    with pytest.raises(OrderRejected, match="positive price"):
        b.place_order(OrderRequest("p-noprice", OPT, Side.SELL, 75,
                                   order_type=OrderType.STOPLOSS_LIMIT, trigger_price=D("90")))
    assert b.place_order(stop("p-edge", "95", "76")).status == OrderStatus.TRIGGER_PENDING
    assert [o.client_order_id for o in b.orders()] == ["p-edge"]


def test_modify_moves_a_resting_stop_and_a_move_through_the_market_fills(
        rds: redis.Redis) -> None:
    tick(rds, "101.20")
    b = paper(rds)
    placed = b.place_order(stop("p-trail", "95", "90"))
    moved = b.modify_order(placed.broker_order_id, stop("p-trail", "99", "95", qty=150))
    assert (moved.status, moved.requested_price, moved.quantity) == (
        OrderStatus.TRIGGER_PENDING, D("99"), 150)
    tick(rds, "99.50")
    assert b.find_order("p-trail").status == OrderStatus.TRIGGER_PENDING
    with pytest.raises(OrderRejected, match=LPP_TEXT):  # refused: the order keeps its levels
        b.modify_order(placed.broker_order_id, stop("p-trail", "99", "70"))
    assert b.find_order("p-trail").requested_price == D("99")
    with pytest.raises(OrderRejected, match="price, trigger and quantity only"):
        b.modify_order(placed.broker_order_id, OrderRequest("p-trail", OPT, Side.BUY, 75,
                       order_type=OrderType.STOPLOSS_LIMIT, price=D("100"),
                       trigger_price=D("100")))
    through = b.modify_order(placed.broker_order_id, stop("p-trail", "100", "98"))
    assert (through.status, through.filled_quantity) == (OrderStatus.FILLED, 75)
    assert through.average_price == D("99.35")  # bid 99.45 less 2 ticks
    with pytest.raises(OrderRejected, match="cannot be modified as it is FILLED"):
        b.modify_order(placed.broker_order_id, stop("p-trail", "101", "99"))
    with pytest.raises(OrderRejected, match="not found"):
        b.modify_order("paper-nope", stop("nope", "99", "95"))


def test_cancel_takes_a_resting_stop_out_for_good(rds: redis.Redis) -> None:
    tick(rds, "101.20")
    b = paper(rds)
    placed = b.place_order(stop("p-can", "95", "90"))
    cancelled = b.cancel_order(placed.broker_order_id, "STOPLOSS")
    assert (cancelled.status, cancelled.filled_quantity) == (OrderStatus.CANCELLED, 0)
    tick(rds, "80")
    assert b.find_order("p-can").status == OrderStatus.CANCELLED  # never triggers afterwards
    with pytest.raises(OrderRejected, match="cannot be modified as it is CANCELLED"):
        b.modify_order(placed.broker_order_id, stop("p-can", "95", "90"))


def test_cancel_of_a_stop_the_market_already_crossed_fills_it_instead(rds: redis.Redis) -> None:
    tick(rds, "101.20")
    b = paper(rds)
    placed = b.place_order(stop("p-race", "95", "90"))
    tick(rds, "94.00")  # nobody looked at the order since: the cancel is the first to
    answer = b.cancel_order(placed.broker_order_id, "STOPLOSS")
    assert (answer.status, answer.average_price) == (OrderStatus.FILLED, D("93.85"))
    assert b.cancel_order(placed.broker_order_id, "STOPLOSS").status == OrderStatus.FILLED


class _Meddling(RedisPriceSource):
    """A price source that lets another process act on the order book during a quote."""

    def __init__(self, r: redis.Redis, meddle: Callable[[], None]) -> None:
        super().__init__(r)
        self.meddle: Callable[[], None] | None = meddle

    def quote(self, contract: Contract) -> Quote:
        if self.meddle is not None:
            meddle, self.meddle = self.meddle, None
            meddle()
        return super().quote(contract)


def test_a_cancel_that_loses_the_race_to_a_fill_reports_the_fill(rds: redis.Redis) -> None:
    tick(rds, "101.20")
    b = paper(rds)
    placed = b.place_order(stop("p-cas", "95", "90"))

    def other_process_fills() -> None:
        tick(rds, "94.00")
        assert paper(rds).find_order("p-cas").status == OrderStatus.FILLED
        tick(rds, "101.20")  # and the price is back above the trigger

    slow = PaperBroker(rds, "u1", _Meddling(rds, other_process_fills), slippage_ticks=2)
    answer = slow.cancel_order(placed.broker_order_id, "STOPLOSS")
    # Its compare-and-set failed; the retry sees the fill: filled once, not cancelled.
    assert (answer.status, answer.average_price) == (OrderStatus.FILLED, D("93.85"))
    assert b.find_order("p-cas").status == OrderStatus.FILLED
