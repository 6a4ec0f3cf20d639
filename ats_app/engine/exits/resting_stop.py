"""The levels of a stop-loss resting at the broker (pure: no I/O).

A protective SELL rests as Angel's STOPLOSS_LIMIT: parked until the market trades at or
through its trigger, then a limit order. Index options take no stop-market orders, and the
exchanges refuse an SL-limit whose limit is too far from its trigger (Limit Price
Protection), so the limit sits a small band under the trigger: wide enough to fill in a
fast fall, narrow enough to be accepted. A fall that gaps through the limit leaves the order
open at the broker; the monitor still watches the position and its exit cancels that order
first and sells at market.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from ats_app.engine.broker.price_bands import BandKind, sl_limit_band

# Limit = trigger less 5 % of it (at least two ticks), never beyond the exchange's SL-limit
# band (`broker.price_bands`: 3 % for futures and stocks over Rs 50): 5 % of an option's
# price is a few seconds of a fast fall.
BAND_PCT = Decimal("5")
MIN_BAND_TICKS = 2


def limit_for(trigger: Decimal, tick: Decimal, kind: BandKind = BandKind.OPTION,
              band_pct: Decimal = BAND_PCT) -> Decimal:
    """The sell limit of a stop triggered at `trigger`: on the tick grid, at least a tick,
    inside the exchange's band for `kind`."""
    band = min(max(trigger * band_pct / 100, tick * MIN_BAND_TICKS),
               sl_limit_band(trigger, kind))
    steps = ((trigger - band) / tick).to_integral_value(rounding=ROUND_FLOOR)
    return max(steps * tick, tick).quantize(tick)


def trigger_for(stop: Decimal, tick: Decimal) -> Decimal:
    """The monitor's stop on the tick grid (a sell stop rounds down: never tighter)."""
    return ((stop / tick).to_integral_value(rounding=ROUND_FLOOR) * tick).quantize(tick)


def worth_moving(resting_paise: int, wanted_paise: int, tick_paise: int) -> bool:
    """A trailing stop moves the resting one only up, and by at least a tick: each modify
    counts against the account's order rate limit."""
    return wanted_paise - resting_paise >= max(tick_paise, 1)
