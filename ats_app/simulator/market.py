"""The simulated market: seeded random walks, option premiums, pins, scripted paths, quotes."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as dtime

from ats_app.simulator.clock import IST, Clock
from ats_app.simulator.pricing import (
    RISK_FREE_RATE,
    bid_ask,
    black_scholes,
    to_paise_on_tick,
)
from ats_app.simulator.scripmaster import Instrument, ScripMaster

# Trading seconds in a year: the walk's per-step vol is scaled to the session, not the calendar,
# so a 50 ms step moves NIFTY by about half a point, like a real quiet market.
_TRADING_SECONDS_PER_YEAR = 252 * 6.25 * 3600


@dataclass
class Quote:
    """A consistent snapshot of one instrument; prices in paise."""

    instrument: Instrument
    ltp: int
    bid: int
    ask: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    last_qty: int
    sequence: int
    ts_ms: int

    @property
    def ltp_rupees(self) -> float:
        return self.ltp / 100.0


@dataclass
class _Path:
    prices: list[float]
    interval_s: float
    started: float = field(default_factory=time.monotonic)

    def value(self, now: float) -> float:
        i = int((now - self.started) / self.interval_s) if self.interval_s > 0 else 0
        return self.prices[min(max(i, 0), len(self.prices) - 1)]


@dataclass
class _Day:
    open: int
    high: int
    low: int
    close: int
    volume: int = 0
    sequence: int = 0


class Market:
    def __init__(self, master: ScripMaster, clock: Clock, seed: int, step_s: float) -> None:
        self.master = master
        self.clock = clock
        self.step_s = step_s
        self._roots = [i for i in master.instruments if not i.underlying]
        # One RNG per root, seeded from (seed, token): each instrument's path is reproducible
        # regardless of which other instruments exist or are being watched.
        self._rng = {i.token: random.Random(f"{seed}:{i.token}") for i in self._roots}
        self._walk = {i.token: i.base_price for i in self._roots}
        self._pins: dict[str, float] = {}
        self._paths: dict[str, _Path] = {}
        self._days: dict[str, _Day] = {}
        self._cache: dict[str, Quote] = {}
        self.steps = 0

    # --- control -----------------------------------------------------------------------------
    def pin(self, token: str, ltp: float | None) -> None:
        self._paths.pop(token, None)
        if ltp is None:
            released = self._pins.pop(token, None)
            if released is not None and token in self._walk:
                self._walk[token] = released  # resume the walk from where the pin left it
        else:
            self._pins[token] = float(ltp)
        self._cache.clear()

    def script(self, token: str, prices: list[float], interval_ms: float) -> None:
        self._pins.pop(token, None)
        self._paths[token] = _Path([float(p) for p in prices], interval_ms / 1000.0)
        self._cache.clear()

    def controlled(self, token: str) -> bool:
        return token in self._pins or token in self._paths

    # --- evolution ---------------------------------------------------------------------------
    def step(self) -> None:
        """Advance every uncontrolled walk root by one step."""
        for inst in self._roots:
            tok = inst.token
            if tok in self._pins or tok in self._paths:
                continue
            shock = self._rng[tok].gauss(0.0, 1.0)
            sigma = inst.vol * math.sqrt(self.step_s / _TRADING_SECONDS_PER_YEAR)
            self._walk[tok] *= math.exp(sigma * shock - 0.5 * sigma * sigma)
        self.steps += 1
        self._cache.clear()

    # --- pricing -----------------------------------------------------------------------------
    def raw_price(self, inst: Instrument) -> float:
        tok = inst.token
        if tok in self._pins:
            return self._pins[tok]
        path = self._paths.get(tok)
        if path is not None:
            return path.value(time.monotonic())
        if not inst.underlying:
            return self._walk[tok]
        under = self.master.by_token[inst.underlying]
        spot = self.raw_price(under)
        years = self._years_to_expiry(inst)
        if inst.is_option:
            return black_scholes(spot, inst.strike, years, inst.option_type == "CE")
        return spot * math.exp(RISK_FREE_RATE * years)  # futures at cost of carry

    def _years_to_expiry(self, inst: Instrument) -> float:
        if inst.expiry is None:
            return 0.0
        expiry_at = datetime.combine(inst.expiry, dtime(15, 30), IST)
        return max(0.0, expiry_at.timestamp() - self.clock.epoch()) / (365.0 * 86400)

    def quote(self, token: str) -> Quote | None:
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        inst = self.master.get(token)
        if inst is None:
            return None
        ltp = to_paise_on_tick(self.raw_price(inst), inst.tick_paise)
        bid, ask = bid_ask(ltp, inst.tick_paise)
        day = self._days.get(token)
        if day is None:
            day = self._days[token] = _Day(ltp, ltp, ltp, ltp)
        day.high, day.low = max(day.high, ltp), min(day.low, ltp)
        day.sequence += 1
        last_qty = inst.lotsize * (1 + day.sequence % 7)
        day.volume += last_qty
        q = Quote(inst, ltp, bid, ask, day.open, day.high, day.low, day.close, day.volume,
                  last_qty, day.sequence, int(self.clock.epoch() * 1000))
        self._cache[token] = q
        return q
