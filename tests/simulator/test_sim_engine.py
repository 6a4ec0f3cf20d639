"""Order matching and risk checks, driven directly (no server)."""

from __future__ import annotations

from datetime import date
from typing import Any

from ats_app.simulator.accounts import Account
from ats_app.simulator.clock import Clock
from ats_app.simulator.market import Market
from ats_app.simulator.orders import OrderBook
from ats_app.simulator.positions import Positions
from ats_app.simulator.scripmaster import ScripMaster, build_instruments


def _engine(cash: float = 1_000_000.0) -> tuple[OrderBook, Market, list[tuple[str, str]]]:
    master = ScripMaster(build_instruments(date(2026, 11, 25), strikes_each_side=2))
    market = Market(master, Clock(), seed=1, step_s=0.05)
    accounts = {"C": Account("C", "1", "JBSWY3DPEHPK3PXP", None, cash, "x")}
    positions = Positions(accounts, lambda tok: market.quote(tok).ltp / 100)
    events: list[tuple[str, str]] = []
    book = OrderBook(market, market.clock, positions, False,
                     lambda _c, row, code: events.append((row["orderid"], code)))
    return book, market, events


def _place(book: OrderBook, **kw: Any) -> str:
    p = {"variety": "NORMAL", "tradingsymbol": "SBIN-EQ", "symboltoken": "3045",
         "transactiontype": "BUY", "exchange": "NSE", "ordertype": "MARKET",
         "producttype": "INTRADAY", "duration": "DAY", "quantity": "10", **kw}
    inst = book.validate(p)
    assert not isinstance(inst, tuple), inst
    return book.place("C", p, inst).orderid


def test_seeded_walk_is_reproducible_and_pins_hold() -> None:
    _, m1, _ = _engine()
    _, m2, _ = _engine()
    for _ in range(50):
        m1.step()
        m2.step()
    assert m1.quote("2885").ltp == m2.quote("2885").ltp
    m1.pin("2885", 1234.5)
    m1.step()
    q = m1.quote("2885")
    assert (q.ltp, q.bid < q.ltp < q.ask) == (123450, True)


def test_market_fills_at_touch_and_limit_waits_for_cross() -> None:
    book, market, events = _engine()
    market.pin("3045", 950.0)
    q = market.quote("3045")
    buy = _place(book)
    rest = _place(book, ordertype="LIMIT", price="900", transactiontype="SELL")
    book.process()
    assert book.orders[buy].averageprice == q.ask / 100
    assert book.orders[rest].status == "complete"  # a sell limit below the bid crosses
    wait = _place(book, ordertype="LIMIT", price="940")
    book.process()
    assert book.orders[wait].status == "open"
    market.pin("3045", 939.0)
    book.process()
    assert book.orders[wait].status == "complete" and book.orders[wait].averageprice <= 940
    assert [c for o, c in events if o == buy] == ["AB09", "AB01", "AB05"]


def test_option_short_needs_margin_and_closing_does_not() -> None:
    book, market, _ = _engine(cash=20_000.0)
    opt = next(i for i in market.master.instruments if i.option_type == "CE")
    kw = {"tradingsymbol": opt.symbol, "symboltoken": opt.token, "exchange": "NFO",
          "producttype": "CARRYFORWARD", "quantity": str(opt.lotsize)}
    short = _place(book, transactiontype="SELL", **kw)
    book.process()
    assert book.orders[short].status == "rejected"
    assert "Insufficient Funds" in book.orders[short].text
    long_ = _place(book, **kw)
    book.process()
    assert book.orders[long_].status == "complete"
    close = _place(book, transactiontype="SELL", **kw)
    book.process()
    assert book.orders[close].status == "complete"


def test_validation_codes() -> None:
    book, _, _ = _engine()
    base = {"variety": "NORMAL", "tradingsymbol": "SBIN-EQ", "symboltoken": "3045",
            "transactiontype": "BUY", "exchange": "NSE", "ordertype": "MARKET",
            "producttype": "INTRADAY", "quantity": "1"}
    assert book.validate({**base, "ordertag": "a" * 21})[0] == "AB4008"
    assert book.validate({**base, "ordertag": "a" * 20}) is book.market.master.get("3045")
    assert book.validate({**base, "exchange": "NFO"})[0] == "AB1009"
    assert book.validate({**base, "quantity": "0"})[0] == "AB2000"
    assert book.validate({**base, "ordertype": "STOPLOSS_LIMIT", "price": "1"})[1] == \
        "Invalid Trigger Price"
