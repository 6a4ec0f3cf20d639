"""Deterministic historical candles for ``getCandleData``.

Each candle is a pure function of (seed, token, bucket start), so the same request always gets
the same answer and overlapping requests agree, without storing any history.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

from ats_app.simulator.clock import IST

INTERVALS = {
    "ONE_MINUTE": 1, "THREE_MINUTE": 3, "FIVE_MINUTE": 5, "TEN_MINUTE": 10,
    "FIFTEEN_MINUTE": 15, "THIRTY_MINUTE": 30, "ONE_HOUR": 60, "ONE_DAY": 1440,
}
MAX_CANDLES = 8000  # Angel caps a single request too; larger ranges must be paged
_SESSION_OPEN = (9, 15)
_SESSION_MINUTES = 375  # 09:15-15:30


def _level(seed: int, token: str, anchor: float, epoch: float) -> float:
    # Slow waves plus seeded noise: continuous enough to look like a chart.
    noise = random.Random(f"{seed}:{token}:{int(epoch)}").gauss(0.0, 0.0015)
    wave = 0.01 * math.sin(epoch / 86400.0) + 0.004 * math.sin(epoch / 5400.0)
    return anchor * (1.0 + wave + noise)


def _round(price: float, tick_paise: int) -> float:
    tick = max(1, tick_paise)
    return round(round(price * 100 / tick) * tick / 100.0, 2)


def _buckets(start: datetime, end: datetime, minutes: int) -> list[datetime]:
    out: list[datetime] = []
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day <= end and len(out) < MAX_CANDLES:
        if day.weekday() < 5:
            open_at = day.replace(hour=_SESSION_OPEN[0], minute=_SESSION_OPEN[1])
            if minutes >= 1440:
                if start <= open_at <= end or start.date() <= day.date() <= end.date():
                    out.append(open_at)
            else:
                for k in range(0, _SESSION_MINUTES, minutes):
                    at = open_at + timedelta(minutes=k)
                    if start <= at <= end:
                        out.append(at)
        day += timedelta(days=1)
    return out[:MAX_CANDLES]


def generate(seed: int, token: str, anchor: float, tick_paise: int, interval: str,
             fromdate: str, todate: str) -> list[list[object]]:
    """Rows ``[iso time, open, high, low, close, volume]`` as Angel returns them."""
    if interval not in INTERVALS:
        raise ValueError("Invalid interval")
    try:
        start = datetime.strptime(fromdate, "%Y-%m-%d %H:%M").replace(tzinfo=IST)
        end = datetime.strptime(todate, "%Y-%m-%d %H:%M").replace(tzinfo=IST)
    except ValueError:
        raise ValueError("Invalid date format, expected yyyy-MM-dd HH:mm") from None
    minutes = INTERVALS[interval]
    rows: list[list[object]] = []
    for at in _buckets(start, end, minutes):
        t0 = at.timestamp()
        t1 = t0 + 60 * min(minutes, _SESSION_MINUTES)
        o = _level(seed, token, anchor, t0)
        c = _level(seed, token, anchor, t1)
        rng = random.Random(f"{seed}:{token}:{int(t0)}:hl")
        h = max(o, c) * (1 + abs(rng.gauss(0, 0.001)))
        low = min(o, c) * (1 - abs(rng.gauss(0, 0.001)))
        vol = int(1000 * minutes * (1 + rng.random()))
        rows.append([at.isoformat(), _round(o, tick_paise), _round(h, tick_paise),
                     _round(low, tick_paise), _round(c, tick_paise), vol])
    return rows
