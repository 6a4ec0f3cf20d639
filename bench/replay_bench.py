"""What-if replay speed: 200 trades x 64 settings from a warm candle cache, as a ratio to
reading the candles alone (the cache's rows decoded and each trade's window cut).

    python -m bench.replay_bench [--trades 200] [--rounds 3]

The cache is warmed once from the SmartAPI simulator (in-process, real HTTP through the
official SDK); the measured runs make no broker call (checked). SQLite database in a
temporary directory. Writes the `replay` section of bench/results.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ats_app.engine.core.clock import IST


class SdkCandles:
    """getCandleData on the simulator through the official SDK, counting requests."""

    def __init__(self, base_url: str) -> None:
        import pyotp
        from SmartApi.smartConnect import SmartConnect

        from ats_app.simulator.config import demo_account

        demo = demo_account()
        self.sc = SmartConnect(api_key="simulator", root=base_url)
        self.sc.generateSession(demo.client_code, demo.pin, pyotp.TOTP(demo.totp_secret).now())
        self.calls = 0

    def candle_data(self, exchange: str, symboltoken: str, interval: str, fromdate: str,
                    todate: str) -> list[list[Any]]:
        self.calls += 1
        env = self.sc.getCandleData({"exchange": exchange, "symboltoken": symboltoken,
                                     "interval": interval, "fromdate": fromdate,
                                     "todate": todate})
        return env.get("data") or []


def _trades(n: int) -> list[Any]:
    from ats_app.engine.reports.replay import ReplayTrade
    from ats_app.engine.reports.replay_rules import Trade
    from ats_app.simulator.scripmaster import EQUITIES

    days, d = [], date(2026, 9, 1)
    while len(days) < (n + 4) // 5:
        if d.weekday() < 5:
            days.append(d)
        d += timedelta(days=1)
    out = []
    for i in range(n):
        token, name, price = EQUITIES[i % len(EQUITIES)]
        day = days[i // 5]
        t_in = datetime(day.year, day.month, day.day, 9, 20, tzinfo=IST) + timedelta(
            minutes=55 * (i % 5))
        t_out = t_in + timedelta(minutes=30 + (i * 37) % 150)
        entry = Decimal(str(price))
        out.append(ReplayTrade(Trade(t_in, entry, t_out, entry * Decimal("1.002"), 10),
                               "NSE", token, f"{name}-EQ"))
    return out


def run(n_trades: int, rounds: int) -> dict[str, Any]:
    from ats_app.engine.core.config import reset_settings_cache
    from ats_app.engine.reports import replay
    from ats_app.engine.store import db
    from ats_app.simulator.config import SimConfig
    from ats_app.simulator.server import ServerThread

    tmp = tempfile.mkdtemp(prefix="replay-bench-")
    url = f"sqlite:///{tmp}/bench.db"
    os.environ.setdefault("ATS_DATA_DIR", tmp)
    reset_settings_cache()
    db.upgrade(url)
    server = ServerThread(SimConfig()).start()
    source = SdkCandles(server.base_url)
    trades = _trades(n_trades)
    grid = replay.settings_grid(
        [Decimal(v) for v in ("0", "0.2", "0.5", "1")],
        [Decimal(v) for v in ("0", "0.3", "1", "2")],
        [Decimal(v) for v in ("0", "0.15", "0.3", "0.5")])
    try:
        with db.session_scope(url) as s:
            warm_t0 = time.perf_counter()
            replay.windows(s, source, "sim", trades)
            warm_s = time.perf_counter() - warm_t0
        warm_calls = source.calls
        reads, totals = [], []
        for _ in range(rounds):
            with db.session_scope(url) as s:
                t0 = time.perf_counter()
                replay.windows(s, source, "sim", trades)
                reads.append(time.perf_counter() - t0)
            with db.session_scope(url) as s:
                t0 = time.perf_counter()
                out = replay.replay_trades(s, source, "sim", trades, grid)
                totals.append(time.perf_counter() - t0)
        assert source.calls == warm_calls, "a warm run asked the broker"
        assert len(out["results"]) == len(grid) == 64
        candles = sum(1 for _ in out["results"][0]["exits"])
    finally:
        server.stop()
    read, total = statistics.median(reads), statistics.median(totals)
    return {"trades": n_trades, "settings": len(grid), "warm_up_s": round(warm_s, 3),
            "warm_up_requests": warm_calls, "read_candles_s": round(read, 4),
            "replay_s": round(total, 4), "ratio": round(total / read, 2),
            "per_trade_setting_us": round(1e6 * (total - read) / (n_trades * len(grid)), 2),
            "exits": candles}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--trades", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    result = run(args.trades, args.rounds)
    from bench.results import save

    save("replay", result)
    print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
