"""The replay's rules, trade metrics and TradingView exports (issue 27): pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from ats_app.engine.broker.base import Side
from ats_app.engine.broker.charges import Segment, estimate
from ats_app.engine.core.clock import IST
from ats_app.engine.core.errors import ValidationError
from ats_app.engine.reports.metrics import (
    ClosedTrade,
    daily_pnl,
    equity_curve,
    max_drawdown,
    round_trip_charges,
    setting_result,
    summarize,
)
from ats_app.engine.reports.replay_rules import (
    Candle,
    Setting,
    Trade,
    considered,
    replay_trade,
    signal_price,
)
from ats_app.engine.reports.tradingview_trades import parse_trades

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=IST)


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def candle(minute: int, o: str, h: str, lo: str, c: str) -> Candle:
    return Candle(at(minute), D(o), D(h), D(lo), D(c))


def trade(exit_minute: int = 10, entry: str = "100", out: str = "101") -> Trade:
    return Trade(at(0) + timedelta(seconds=20), D(entry), at(exit_minute) + timedelta(seconds=5),
                 D(out), 10)


def s(sl: str, target: str, tsl: str) -> Setting:
    return Setting(D(sl), D(target), D(tsl))


def test_window_starts_after_the_entry_minute_and_ends_before_the_exit_minute() -> None:
    bars = [candle(m, "100", "100", "100", "100") for m in range(0, 12)]
    kept = considered(trade(exit_minute=10), bars)
    assert [c.start for c in kept] == [at(m) for m in range(1, 10)]


def test_gap_through_the_stop_exits_at_the_open() -> None:
    bars = [candle(1, "99.5", "100.2", "99.4", "99.8"), candle(2, "97", "98", "96", "97.5")]
    e = replay_trade(trade(), bars, s("2", "5", "0"))
    assert (e.exit_price, e.reason, e.exit_time) == (D("97"), "stop_loss", at(2))


def test_gap_over_the_target_exits_at_the_open() -> None:
    e = replay_trade(trade(), [candle(1, "106", "107", "105.5", "106")], s("2", "5", "0"))
    assert (e.exit_price, e.reason) == (D("106"), "target")


def test_both_levels_inside_one_candle_the_stop_comes_first() -> None:
    e = replay_trade(trade(), [candle(1, "100", "106", "97", "101")], s("2", "5", "0"))
    assert (e.exit_price, e.reason) == (D("98"), "stop_loss")


def test_target_inside_a_candle_exits_at_the_target() -> None:
    e = replay_trade(trade(), [candle(1, "100", "105.5", "99", "105")], s("2", "5", "0"))
    assert (e.exit_price, e.reason, e.exit_time) == (D("105"), "target", at(1))


def test_trail_rises_then_is_hit() -> None:
    bars = [candle(1, "100", "103", "99.5", "102.5"),   # no trail yet; high 103 joins
            candle(2, "102.5", "104", "102", "103.8"),  # trail 103 x 0.99 = 101.97; high 104
            candle(3, "103.5", "103.6", "102.5", "103"),  # trail 102.96: low 102.5 hits
            candle(4, "90", "90", "90", "90")]
    e = replay_trade(trade(), bars, s("2", "0", "1"))
    assert e.reason == "trailing" and e.exit_time == at(3)
    assert e.exit_price == D("104") * D("0.99")


def test_trail_below_the_stop_leaves_the_stop_active() -> None:
    # trail 100.5 x 0.95 = 95.475 is under the 2 % stop (98): a drop to 97 is a stop_loss
    bars = [candle(1, "100", "100.5", "99.9", "100"), candle(2, "100", "100", "97", "97")]
    e = replay_trade(trade(), bars, s("2", "0", "5"))
    assert (e.reason, e.exit_price) == ("stop_loss", D("98"))


def test_a_level_at_zero_is_off() -> None:
    bars = [candle(1, "100", "150", "50", "100")]
    assert replay_trade(trade(), bars, s("0", "0", "0")).reason == "signal"
    assert replay_trade(trade(), bars, s("0", "10", "0")).reason == "target"
    assert replay_trade(trade(), bars, s("10", "0", "0")).reason == "stop_loss"


def test_no_level_hit_or_candles_missing_exits_on_the_signal() -> None:
    t = trade(out="100.4")
    for bars in ([], [candle(1, "100", "100.5", "99.5", "100")]):
        e = replay_trade(t, bars, s("1", "1", "0"))
        assert (e.exit_price, e.exit_time, e.reason) == (D("100.4"), t.exit_time, "signal")


def test_touching_a_level_exactly_counts() -> None:
    assert replay_trade(trade(), [candle(1, "100", "101", "99", "100")],
                        s("1", "5", "0")).exit_price == D("99")
    assert replay_trade(trade(), [candle(1, "100", "105", "99.5", "100")],
                        s("1", "5", "0")).exit_price == D("105")


def test_settings_refuse_negative_and_whole_stops() -> None:
    for bad in (("-1", "1", "0"), ("100", "1", "0"), ("1", "-2", "0"), ("1", "1", "100")):
        with pytest.raises(ValueError):
            s(*bad)


def test_a_signal_without_a_price_takes_the_candles_price_at_its_minute() -> None:
    bars = [candle(1, "100", "101", "99", "100.5"), candle(5, "102", "103", "101", "102.5")]
    assert signal_price(bars, at(1) + timedelta(seconds=40), D("1")) == D("100")
    assert signal_price(bars, at(3), D("1")) == D("102")  # the next candle's open
    assert signal_price(bars, at(9), D("1")) == D("102.5")  # the last close before it
    assert signal_price([], at(3), D("7")) == D("7")


# --- metrics ---------------------------------------------------------------------------------

def test_summary_of_known_trades() -> None:
    day1 = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)
    trades = [ClosedTrade(day1, D("100"), D("10"), "target"),
              ClosedTrade(day1 + timedelta(hours=1), D("-50"), D("10"), "stop_loss"),
              ClosedTrade(day1 + timedelta(days=1), D("-30"), D("10"), "stop_loss"),
              ClosedTrade(day1 + timedelta(days=1, hours=1), D("200"), D("10"), "signal")]
    m = summarize(trades)
    assert (m.trades, m.wins, m.losses) == (4, 2, 2)
    assert m.win_rate == D("50.00")
    assert (m.avg_win, m.avg_loss) == (D("140.00"), D("-50.00"))
    assert m.profit_factor == D("2.80")  # 280 / 100
    assert m.expectancy == D("45.00")
    assert m.max_drawdown == D("100.00")  # 90 -> 30 -> -10
    assert (m.charges, m.gross_pnl, m.net_pnl) == (D("40.00"), D("220.00"), D("180.00"))
    assert m.exit_reasons == {"target": 1, "stop_loss": 2, "signal": 1}
    assert [e for _, e in equity_curve(trades)] == [D("90"), D("30"), D("-10"), D("180")]
    assert daily_pnl(trades) == [(day1.date(), D("30.00")),
                                 ((day1 + timedelta(days=1)).date(), D("150.00"))]


def test_empty_summary_and_drawdown_from_zero() -> None:
    m = summarize([])
    assert (m.trades, m.win_rate, m.profit_factor, m.net_pnl) == (0, None, None, D("0.00"))
    assert max_drawdown([D("-5"), D("-5"), D("20")]) == D("10")


def test_setting_result_charges_both_orders_like_the_paper_broker() -> None:
    t = trade()
    e = replay_trade(t, [candle(1, "100", "105.5", "99", "105")], s("2", "5", "0"))
    out = setting_result(s("2", "5", "0"), [e], [t.quantity], [Segment.OPTIONS])
    charges = (estimate(Segment.OPTIONS, Side.BUY, D("100"), 10).total
               + estimate(Segment.OPTIONS, Side.SELL, D("105"), 10).total)
    assert charges == round_trip_charges(Segment.OPTIONS, D("100"), D("105"), 10)
    assert out["gross_pnl"] == 50.0 and out["net_pnl"] == float(D("50") - charges)
    assert out["exits"] == [{"entry_time": "2026-12-07T10:00:20+05:30", "entry_price": 100.0,
                             "exit_time": "2026-12-07T10:01:00+05:30", "exit_price": 105.0,
                             "reason": "target"}]
    assert set(out) == {"sl", "target", "tsl", "trades", "wins", "gross_pnl", "net_pnl",
                        "max_drawdown", "exits"}


# --- TradingView exports -------------------------------------------------------------------

OLD = """Trade #,Type,Signal,Date/Time,Price INR,Contracts,Profit INR,Profit %,Cum. Profit INR
2,Exit long,Close,2026-12-02 11:05,101.50,50,75,1.5,125
2,Entry long,Long,2026-12-02 10:00,100.00,50,,,
1,Exit long,Close,2026-12-01 14:30,"1,101.00",50,50,1,50
1,Entry long,Long,2026-12-01 09:31,"1,100.00",50,,,
"""

NEW = ("\ufeffTrade number;Type;Date and time;Signal;Price USD;Position size (qty);"
       "Position size (value);Net P&L USD\n"
       "3;Exit long;Open;Open;;10;;\n"
       "3;Entry long;2026-12-03 10:00:00;Long;99;10;990;\n"
       "2;Exit short;2026-12-02 12:00:00;Cover;90;10;;\n"
       "2;Entry short;2026-12-02 11:00:00;Short;95;10;;\n"
       "1;Exit long;2026-12-01 10:15:00;TP;102;10;;\n"
       "1;Entry long;2026-12-01 10:00:00;Long;100;10;;\n")


def test_the_classic_export() -> None:
    p = parse_trades(OLD)
    assert p.numbers == [1, 2]
    first = p.trades[0]
    assert first.entry_time == datetime(2026, 12, 1, 9, 31, tzinfo=IST)
    assert (first.entry_price, first.exit_price, first.quantity) == (D("1100"), D("1101"), 50)
    assert (p.skipped_short, p.skipped_open) == (0, 0)


def test_the_newer_export_with_semicolons_shorts_and_an_open_trade() -> None:
    p = parse_trades(NEW)
    assert p.numbers == [1]
    assert (p.skipped_short, p.skipped_open) == (1, 1)
    assert p.trades[0].exit_time == datetime(2026, 12, 1, 10, 15, tzinfo=IST)


@pytest.mark.parametrize("text, row, words", [
    ("Date,Open,High,Low,Close\n2026-12-01,1,2,3,4\n", 1, "not a TradingView"),
    (OLD.replace("2,Exit long,Close", "2,Exit lng,Close"), 2, "Type"),
    (OLD.replace("2026-12-02 10:00", "02/12/26 10am"), 3, "Date/Time"),
    (OLD.replace("100.00,50", "abc,50"), 3, "Price"),
    (OLD.replace("101.50,50", "101.50,2.5"), 2, "whole number"),
    (OLD.replace("2,Entry long", "1,Entry long"), 5, "second entry"),
    (OLD.replace("2,Entry long", "7,Entry long"), 2, "no entry row"),
    (OLD.replace("11:05", "09:05"), 2, "before it enters"),
    ("Trade #,Type,Signal,Date/Time,Price INR,Price USD\n", 1, "two Price"),
])
def test_refusals_name_the_row(text: str, row: int, words: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_trades(text)
    assert f"row {row}:" in str(err.value) and words in str(err.value)


def test_a_file_with_no_closed_long_trade_is_refused() -> None:
    with pytest.raises(ValidationError, match="no closed long trade"):
        parse_trades(NEW.split("1;Exit long")[0])
