"""Resting stops in the simulator's matching engine (STOPLOSS variety): trigger, fill as a
limit, modify, cancel, Limit Price Protection, margin. Driven directly (no server)."""

from __future__ import annotations

from ats_app.engine.broker.price_bands import LPP_TEXT
from ats_app.simulator.market import Market
from ats_app.simulator.orders import OrderBook
from tests.simulator.test_sim_engine import _engine, _place


def _long_option(cash: float) -> tuple[OrderBook, Market, list[tuple[str, str]], dict]:
    """An account that just bought one lot of a CE at Rs 100, with `cash` left over."""
    book, market, events = _engine(cash=cash)
    opt = next(i for i in market.master.instruments if i.option_type == "CE")
    market.pin(opt.token, 100.0)
    kw = {"tradingsymbol": opt.symbol, "symboltoken": opt.token, "exchange": "NFO",
          "quantity": str(opt.lotsize)}
    entry = _place(book, **kw)
    book.process()
    assert book.orders[entry].status == "complete"
    return book, market, events, kw


def _stop(book: OrderBook, kw: dict, trigger: str, limit: str) -> str:
    return _place(book, **kw, variety="STOPLOSS", ordertype="STOPLOSS_LIMIT",
                  transactiontype="SELL", triggerprice=trigger, price=limit)


def test_a_sell_stop_closing_a_long_needs_no_margin_and_fills_at_or_above_its_limit() -> None:
    book, market, events, kw = _long_option(cash=7_000.0)  # 1 lot bought at ~Rs 100
    naked = _place(book, **{**kw, "tradingsymbol": "NIFTY01DEC2626000CE",
                            "symboltoken": "40005"}, transactiontype="SELL")
    stop = _stop(book, kw, "95", "90")
    book.process()
    assert book.orders[naked].status == "rejected"  # a short needs margin the cash lacks
    assert book.orders[stop].status == "trigger pending"  # closing a long needs none
    market.pin(kw["symboltoken"], 95.05)
    book.process()
    assert book.orders[stop].status == "trigger pending"
    market.pin(kw["symboltoken"], 94.90)
    book.process()
    order = book.orders[stop]
    bid = market.quote(kw["symboltoken"]).bid / 100
    assert (order.status, order.averageprice) == ("complete", bid) and bid >= 90
    assert [c for o, c in events if o == stop] == ["AB09", "AB10", "AB01", "AB05"]
    [pos] = book.positions.for_client("C")
    assert pos.netqty == 0


def test_a_gap_through_the_limit_rests_open_and_fills_at_the_limit_or_better() -> None:
    book, market, _, kw = _long_option(cash=100_000.0)
    stop = _stop(book, kw, "95", "93")
    book.process()
    market.pin(kw["symboltoken"], 91.0)
    book.process()
    assert book.orders[stop].status == "open" and book.orders[stop].filled == 0
    market.pin(kw["symboltoken"], 93.0)  # the bid is a tick under the limit: still open
    book.process()
    assert market.quote(kw["symboltoken"]).bid < 9300 and book.orders[stop].status == "open"
    market.pin(kw["symboltoken"], 93.5)
    book.process()
    order = book.orders[stop]
    assert order.status == "complete"
    assert order.averageprice == market.quote(kw["symboltoken"]).bid / 100 >= 93


def test_modify_moves_a_trigger_pending_stop_and_keeps_it_pending() -> None:
    book, market, events, kw = _long_option(cash=100_000.0)
    stop = _stop(book, kw, "95", "90")
    book.process()
    assert book.modify(book.orders[stop], {"orderid": stop, "variety": "STOPLOSS",
                                           "triggerprice": "98", "price": "96",
                                           "ordertype": "STOPLOSS_LIMIT",
                                           "quantity": kw["quantity"]}) is None
    order = book.orders[stop]
    assert (order.status, order.triggerprice, order.price) == ("trigger pending", 98.0, 96.0)
    # "modified", then the state it keeps: the last word must not read as open (triggered).
    assert [c for o, c in events if o == stop][-2:] == ["AB04", "AB10"]
    refused = book.modify(order, {"triggerprice": "98", "price": "70"})
    assert refused is not None and refused.startswith(LPP_TEXT)
    assert (order.triggerprice, order.price) == (98.0, 96.0)  # unchanged
    market.pin(kw["symboltoken"], 97.5)
    book.process()
    assert order.status == "complete" and order.averageprice >= 96
    assert book.modify(order, {"price": "99"}) == "Order cannot be modified as it is complete"


def test_an_sl_limit_beyond_the_band_is_rejected_at_admission() -> None:
    book, _, events, kw = _long_option(cash=100_000.0)
    wide = _stop(book, kw, "95", "75.95")  # options above Rs 50: 20 % of 95 = Rs 19
    edge = _stop(book, kw, "95", "76")
    book.process()
    assert book.orders[wide].status == "rejected"
    assert book.orders[wide].text.startswith(LPP_TEXT) and "Rs 19.00" in book.orders[wide].text
    assert [c for o, c in events if o == wide] == ["AB09", "AB03"]
    assert book.orders[edge].status == "trigger pending"


def test_cancel_takes_a_resting_stop_out_but_a_crossed_one_fills_first() -> None:
    book, market, events, kw = _long_option(cash=100_000.0)
    resting, crossed = _stop(book, kw, "95", "90"), _stop(book, kw, "96", "90")
    book.process()
    assert book.cancel(book.orders[resting]) is None
    assert book.orders[resting].status == "cancelled" and events[-1] == (resting, "AB02")
    market.pin(kw["symboltoken"], 95.5)  # through 96, and the engine has not run since
    assert book.cancel(book.orders[crossed]) == "Order cannot be cancelled as it is complete"
    assert book.orders[crossed].filled == int(kw["quantity"])
    book.process()
    assert book.orders[resting].status == "cancelled"  # never triggers afterwards
