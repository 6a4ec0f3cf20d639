"""Property tests (Hypothesis) of the replay's rules (issue 27): on any candle path (gaps
included) and any setting (each level a percentage or off), the exit agrees with the rules
restated independently, happens at a price the candle traded (its open, or inside its range),
at or through the level it names, and a level that is off never fires."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from ats_app.engine.core.clock import IST
from ats_app.engine.reports.replay_rules import Candle, Setting, Trade, replay_trade

T0 = datetime(2026, 11, 2, 10, 0, 30, tzinfo=IST)
PCTS = st.sampled_from([D(0), D("0.1"), D("0.25"), D("0.5"), D(1), D(2), D(5)])


@st.composite
def paths(draw: st.DrawFn) -> tuple[D, list[Candle]]:
    entry = D(draw(st.integers(5_000, 50_000))) / 100
    price, out = entry, []
    for m in range(1, draw(st.integers(0, 30)) + 1):
        gap = D(draw(st.integers(-300, 300))) / 10_000  # up to 3 % from the last close
        o = (price * (1 + gap)).quantize(D("0.05"))
        c = (o * (1 + D(draw(st.integers(-150, 150))) / 10_000)).quantize(D("0.05"))
        h = max(o, c) + D(draw(st.integers(0, 40))) * D("0.05")
        lo = max(D("0.05"), min(o, c) - D(draw(st.integers(0, 40))) * D("0.05"))
        out.append(Candle(T0.replace(second=0) + timedelta(minutes=m), o, h, lo, c))
        price = c
    return entry, out


def restated(entry: D, bars: list[Candle], s: Setting) -> tuple[int, D, str] | None:
    """The README's rules again: the first candle where a level is touched, in the README's
    order within it; None when no level is touched."""
    stop = entry * (1 - s.sl / 100) if s.sl else None
    target = entry * (1 + s.target / 100) if s.target else None
    for i, c in enumerate(bars):
        highs = [b.high for b in bars[:i]]
        trail = max(highs) * (1 - s.tsl / 100) if s.tsl and highs else None
        candidates = [x for x in (stop, trail) if x is not None]
        active = max(candidates) if candidates else None
        why = "trailing" if trail is not None and trail == active and trail != stop else \
            "stop_loss"
        if active is not None and c.open <= active:
            return i, c.open, why
        if target is not None and c.open >= target:
            return i, c.open, "target"
        if active is not None and c.low <= active:
            return i, active, why
        if target is not None and c.high >= target:
            return i, target, "target"
    return None


@settings(max_examples=300, deadline=None)
@given(path=paths(), sl=PCTS, target=PCTS, tsl=PCTS)
def test_replay_follows_the_rules_on_any_path(path: tuple[D, list[Candle]], sl: D, target: D,
                                              tsl: D) -> None:
    entry, bars = path
    s = Setting(sl, target, tsl)
    trade = Trade(T0, entry, T0 + timedelta(hours=2), entry + D("0.35"), 10)
    e = replay_trade(trade, bars, s)
    expected = restated(entry, bars, s)
    if expected is None:
        assert (e.reason, e.exit_time, e.exit_price) == ("signal", trade.exit_time,
                                                          trade.exit_price)
        return
    i, price, why = expected
    assert (e.exit_time, e.exit_price, e.reason) == (bars[i].start, price, why)
    c = bars[i]
    assert e.exit_price == c.open or c.low <= e.exit_price <= c.high  # a price it traded
    off = {"stop_loss": sl == 0, "target": target == 0, "trailing": tsl == 0}
    assert not off[e.reason]
    if e.reason == "target":
        assert e.exit_price >= entry * (1 + target / 100)
    else:  # at or through the stop it names, never above it
        assert e.exit_price <= max(entry * (1 - sl / 100) if sl else D(0),
                                   max(b.high for b in bars[:i]) * (1 - tsl / 100)
                                   if tsl and i else D(0))
