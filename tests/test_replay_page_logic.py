"""The Replay and Reports pages' own logic (issue 27), without a browser: the grid's order,
the heat map, the equity curves, the report's figures as shown."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal as D

from ats_app.engine.broker.charges import Segment
from ats_app.engine.core.clock import IST
from ats_app.engine.reports.metrics import setting_result
from ats_app.engine.reports.replay_rules import Candle, Setting, Trade, replay_trade
from ats_app.state.replay import curve, heat_map, result_rows
from ats_app.state.reports import chart_rows, stats

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=IST)


def _grid() -> tuple[list[dict], dict, list[int]]:
    trades = [Trade(T0 + timedelta(days=i), D("100"), T0 + timedelta(days=i, minutes=30),
                    D("100.4"), 25) for i in range(3)]
    bars = [[Candle(t.entry_time + timedelta(minutes=m), D("100"), D(h), D(lo), D("100"))
             for m, h, lo in ((1, "100.6", "99.7"), (2, "101.2", "99.1"))] for t in trades]
    quantities = [t.quantity for t in trades]
    segs = [Segment.OPTIONS] * 3
    results = []
    for sl in ("0.2", "0.5"):
        for tg in ("0.5", "1"):
            setting = Setting(D(sl), D(tg), D(0))
            exits = [replay_trade(t, b, setting) for t, b in zip(trades, bars, strict=True)]
            results.append(setting_result(setting, exits, quantities, segs))
    off = Setting(D(0), D(0), D(0))
    actual = setting_result(off, [replay_trade(t, [], off) for t in trades], quantities, segs)
    return results, actual, quantities


def test_grid_rows_best_first_and_heat_map_by_sign() -> None:
    results, _, _ = _grid()
    rows = result_rows(results)
    nets = [float(r["net_pnl"].replace(",", "")) for r in rows]
    assert nets == sorted(nets, reverse=True)
    assert rows[0]["key"] == "0.5|0.5|0" and rows[0]["tsl"] == "off"
    head, cells = heat_map(results, 0.0)
    assert head == ["", "target 0.5 %", "target 1 %"]
    assert [row[0]["text"] for row in cells] == ["SL 0.2 %", "SL 0.5 %"]
    for row in cells:
        for cell in row[1:]:
            gain = not cell["text"].startswith("-")
            assert cell["bg"].startswith("rgba(47,158,68" if gain else "rgba(224,49,49")


def test_equity_curves_end_at_each_settings_net() -> None:
    results, actual, quantities = _grid()
    segs = ["OPTIONS"] * 3
    for r in results:
        points = curve(r, actual, quantities, segs)
        assert points[0] == {"label": "0", "replay": 0.0, "actual": 0.0}
        assert points[-1]["replay"] == r["net_pnl"]
        assert points[-1]["actual"] == actual["net_pnl"]


def test_report_figures_and_series_as_shown() -> None:
    section = {"trades": 2, "wins": 1, "losses": 1, "win_rate": 50.0, "avg_win": 1234.5,
               "avg_loss": -20.0, "profit_factor": None, "expectancy": 607.25,
               "max_drawdown": 20.0, "charges": 41.2, "gross_pnl": 1255.7, "net_pnl": 1214.5,
               "exit_reasons": {"target": 1, "stop_loss": 1},
               "equity": [{"time": "2026-11-02T10:30:00+05:30", "equity": 1234.5}],
               "daily": [{"day": "2026-11-02", "net_pnl": 1234.5},
                         {"day": "2026-11-03", "net_pnl": -20.0}]}
    shown = stats(section)
    assert (shown["win_rate"], shown["avg_win"], shown["profit_factor"]) == (
        "50.0 %", "1,234.50", "–")
    equity, daily, reasons = chart_rows(section)
    assert equity == [{"label": "2026-11-02 10:30", "equity": 1234.5}]
    assert daily == [{"day": "2026-11-02", "gain": 1234.5, "loss": 0},
                     {"day": "2026-11-03", "gain": 0, "loss": -20.0}]
    assert reasons == [{"reason": "stop_loss", "count": 1}, {"reason": "target", "count": 1}]
