"""Unit tests of the simulator's pure parts (no sockets)."""

from __future__ import annotations

import math
import struct
from datetime import date, datetime

import pytest
from SmartApi.smartWebSocketV2 import SmartWebSocketV2

from ats_app.simulator import candles, ticks
from ats_app.simulator.clock import IST, Clock, nse_open
from ats_app.simulator.config import parse_account
from ats_app.simulator.faults import FaultStore
from ats_app.simulator.pricing import bid_ask, black_scholes, to_paise_on_tick
from ats_app.simulator.ratelimit import SlidingWindowLimiter
from ats_app.simulator.scripmaster import ScripMaster, build_instruments


def _sdk_parser() -> SmartWebSocketV2:
    return SmartWebSocketV2("jwt", "key", "client", "feed")


def test_packet_lengths_match_the_sdk_layout() -> None:
    t = ticks.TickData(2, "40001", 7, 1_700_000_000_000, 10250)
    assert len(ticks.encode(1, t)) == 51
    assert len(ticks.encode(2, t)) == 123
    assert len(ticks.encode(3, t)) == 379
    assert ticks.encode(1, t) == ticks.encode_ltp(2, "40001", 7, 1_700_000_000_000, 10250)
    with pytest.raises(ValueError):
        ticks.encode(9, t)


def test_sdk_decodes_snap_quote_fields_and_depth_sides() -> None:
    bids = tuple(ticks.Level(10000 - 5 * i, 65, 1) for i in range(5))
    asks = tuple(ticks.Level(10010 + 5 * i, 65, 2) for i in range(5))
    t = ticks.TickData(2, "40001", 9, 1_700_000_000_123, 10005, last_qty=65, avg_price=10001,
                       volume=6500, total_buy_qty=325.0, total_sell_qty=650.0, open=9900,
                       high=10100, low=9800, close=9950, last_trade_ts_ms=1_700_000_000_100,
                       open_interest=42, bids=bids, asks=asks, upper_circuit=12000,
                       lower_circuit=8000, week52_high=13000, week52_low=7000)
    d = _sdk_parser()._parse_binary_data(ticks.encode(3, t))
    assert d["token"] == "40001" and d["exchange_type"] == 2 and d["sequence_number"] == 9
    assert d["last_traded_price"] == 10005 and d["exchange_timestamp"] == 1_700_000_000_123
    assert (d["open_price_of_the_day"], d["high_price_of_the_day"]) == (9900, 10100)
    assert (d["low_price_of_the_day"], d["closed_price"]) == (9800, 9950)
    assert d["total_sell_quantity"] == 650.0 and d["open_interest"] == 42
    assert d["upper_circuit_limit"] == 12000 and d["52_week_low_price"] == 7000
    # After the SDK's own swap, its "buy" side must hold our bids.
    assert [lvl["price"] for lvl in d["best_5_buy_data"]] == [b.price for b in bids]
    assert [lvl["price"] for lvl in d["best_5_sell_data"]] == [a.price for a in asks]


def test_ltp_packet_is_little_endian_paise() -> None:
    raw = ticks.encode_ltp(1, "3045", 1, 2, 95025)
    assert struct.unpack_from("<q", raw, 43)[0] == 95025
    assert raw[2:6] == b"3045" and raw[6:27] == b"\x00" * 21


def test_black_scholes_put_call_parity_and_expiry() -> None:
    s, k, t, r = 26000.0, 26100.0, 10 / 365, 0.065
    call, put = black_scholes(s, k, t, True), black_scholes(s, k, t, False)
    assert call - put == pytest.approx(s - k * math.exp(-r * t), abs=1e-6)
    assert black_scholes(s, 25000, 0, True) == 1000.0
    assert black_scholes(s, 25000, 0, False) == 0.0


def test_tick_rounding_and_spread() -> None:
    assert to_paise_on_tick(102.52, 5) == 10250
    assert to_paise_on_tick(102.53, 5) == 10255
    assert to_paise_on_tick(0.001, 5) == 5  # never below one tick
    bid, ask = bid_ask(10250, 5)
    assert bid < 10250 < ask and bid % 5 == 0 and ask % 5 == 0


def test_rate_limiter_windows() -> None:
    lim = SlidingWindowLimiter([(20, 1.0), (500, 60.0)])
    assert all(lim.allow("c", 0.001 * i) for i in range(20))
    assert not lim.allow("c", 0.5)
    assert lim.allow("other", 0.5)  # per client
    assert lim.allow("c", 1.001)  # the first hit left the 1 s window
    lim2 = SlidingWindowLimiter([(20, 1.0), (500, 60.0)])
    n = sum(lim2.allow("c", i * 0.06) for i in range(600))  # ~16.7/s for 36 s
    assert n == 500


def test_scrip_master_rows_look_like_angels() -> None:
    master = ScripMaster(build_instruments(date(2026, 11, 25)))
    rows = master.rows()
    assert all(isinstance(v, str) for row in rows for v in row.values())
    nifty = [r for r in rows if r["name"] == "NIFTY" and r["instrumenttype"] == "OPTIDX"]
    assert {r["lotsize"] for r in nifty} == {"65"}
    assert {r["expiry"] for r in nifty} >= {"01DEC2026", "29DEC2026"}
    row = next(r for r in nifty if r["symbol"] == "NIFTY01DEC2626000CE")
    assert row["strike"] == "2600000.000000" and row["tick_size"] == "5.000000"
    assert {r["name"] for r in rows if r["instrumenttype"] == "OPTIDX"} == {
        "NIFTY", "BANKNIFTY", "FINNIFTY"}
    assert master.get("2885").symbol == "RELIANCE-EQ"
    assert master.get("99926000").row()["instrumenttype"] == "AMXIDX"
    # Expiries are Tuesdays and in the future of the trading day.
    assert all(datetime.strptime(r["expiry"], "%d%b%Y").weekday() == 1 for r in nifty)


def test_clock_and_nse_hours() -> None:
    c = Clock()
    c.set(datetime(2026, 11, 28, 10, 0, tzinfo=IST))  # a Saturday
    assert abs(c.now().timestamp() - datetime(2026, 11, 28, 10, 0, tzinfo=IST).timestamp()) < 1
    assert not nse_open(c.now())
    assert nse_open(datetime(2026, 11, 25, 9, 15, tzinfo=IST))
    assert not nse_open(datetime(2026, 11, 25, 15, 30, tzinfo=IST))
    c.set(None)
    assert c.is_real


def test_faults_count_down_and_clear() -> None:
    store = FaultStore()
    store.add({"route": "placeOrder", "kind": "http500", "times": 1})
    store.add({"kind": "latency", "ms": 5})
    assert set(store.take("placeOrder")) == {"http500", "latency"}
    assert set(store.take("placeOrder")) == {"latency"}
    assert store.clear() == 1 and store.take("getOrderBook") == {}
    with pytest.raises(ValueError):
        store.add({"kind": "nope"})


def test_parse_account() -> None:
    a = parse_account("C1:1234:JBSWY3DPEHPK3PXP:10.0.0.5")
    assert (a.client_code, a.pin, a.static_ip) == ("C1", "1234", "10.0.0.5")
    assert parse_account("C1:1234:JBSWY3DPEHPK3PXP").static_ip is None
    with pytest.raises(ValueError):
        parse_account("C1:1234")


def test_candles_are_deterministic_and_in_session() -> None:
    args = (7, "3045", 950.0, 5, "FIFTEEN_MINUTE", "2026-11-23 09:00", "2026-11-23 16:00")
    rows = candles.generate(*args)
    assert rows == candles.generate(*args)
    assert len(rows) == 25 and rows[0][0] == "2026-11-23T09:15:00+05:30"
    assert all(r[3] <= min(r[1], r[4]) and r[2] >= max(r[1], r[4]) for r in rows)
    assert candles.generate(7, "3045", 950.0, 5, "ONE_DAY", "2026-11-28 00:00",
                            "2026-11-29 23:59") == []  # a weekend
    with pytest.raises(ValueError):
        candles.generate(7, "3045", 950.0, 5, "TWO_WEEKS", "2026-11-23 09:00", "x")
