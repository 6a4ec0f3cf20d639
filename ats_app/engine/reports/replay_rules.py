"""The what-if replay's rules: one long trade replayed on 1-minute candles under one setting.

Pure: no I/O, Decimal prices. The rules (the README states them the same way):

1. entry at the trade's entry price and time; the candles considered are those that start
   after the entry minute and before the exit minute;
2. levels: stop = entry x (1 - SL %), target = entry x (1 + target %), trail = highest high
   of the candles already considered x (1 - TSL %); the active stop is the higher of stop
   and trail (reason `trailing` when the trail is the higher, else `stop_loss`);
3. each candle in order: an open at or through the active stop exits at the open; else an
   open at or above the target exits at the open; else a low at or under the active stop
   exits at the stop; else a high at or above the target exits at the target (inside one
   candle the stop is assumed to come first); then the candle's high joins the trail;
4. no level hit: the trade's own exit (reason `signal`) at its price.

A setting of 0 turns that level off. Settings are percentages, the unit of a link's
stop-loss / target / trailing stop (0.5 means 0.5 %). Levels are exact (not rounded to the
tick), so a reference computed from the same candles agrees to the paisa and beyond. Before
the first considered candle there is no trail (its "highest high" has no candle yet). A hit
exits at the candle's start time.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

__all__ = [
    "Candle",
    "Exit",
    "Setting",
    "Trade",
    "TradeWindow",
    "considered",
    "replay_trade",
    "signal_price",
    "window",
]

STOP_LOSS = "stop_loss"
TRAILING = "trailing"
TARGET = "target"
SIGNAL = "signal"
REASONS = (STOP_LOSS, TRAILING, TARGET, SIGNAL)

_HUNDRED = Decimal(100)
_ONE = Decimal(1)
_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Candle:
    start: datetime  # aware; the minute the candle opens
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal


@dataclass(frozen=True, slots=True)
class Trade:
    """One closed long trade: its real entry and its real (signal) exit."""

    entry_time: datetime  # aware
    entry_price: Decimal
    exit_time: datetime
    exit_price: Decimal
    quantity: int = 1


@dataclass(frozen=True, slots=True)
class Setting:
    """Stop-loss, target and trailing stop in percent; 0 turns that level off."""

    sl: Decimal
    target: Decimal
    tsl: Decimal

    def __post_init__(self) -> None:
        for name, value, below in (("sl", self.sl, _HUNDRED), ("target", self.target, None),
                                   ("tsl", self.tsl, _HUNDRED)):
            if not isinstance(value, Decimal) or not value.is_finite():
                raise ValueError(f"{name} must be a finite Decimal, got {value!r}")
            if value < 0 or (below is not None and value >= below):
                bound = f"from 0 up to (not including) {below}" if below else "0 or more"
                raise ValueError(f"{name} must be {bound} percent, got {value}")


@dataclass(frozen=True, slots=True)
class Exit:
    entry_time: datetime
    entry_price: Decimal
    exit_time: datetime
    exit_price: Decimal
    reason: str  # stop_loss | trailing | target | signal


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def window(trade: Trade, starts: Sequence[datetime]) -> tuple[int, int]:
    """Rule 1 as index bounds into candles sorted by start (`starts` their start times):
    [lo, hi) are the candles starting after the entry minute and before the exit minute."""
    lo = bisect_right(starts, _minute(trade.entry_time))
    hi = bisect_left(starts, _minute(trade.exit_time))
    return lo, max(lo, hi)


def considered(trade: Trade, candles: Sequence[Candle]) -> Sequence[Candle]:
    """The candles rule 1 considers, from candles sorted by start."""
    lo, hi = window(trade, [c.start for c in candles])
    return candles[lo:hi]


@dataclass(frozen=True, slots=True)
class TradeWindow:
    """A trade with its considered candles, prepared once and replayed under many settings."""

    trade: Trade
    candles: Sequence[Candle]


def replay_trade(trade: Trade, candles: Sequence[Candle], setting: Setting) -> Exit:
    """Rules 2-4 over `candles`, which must already be the considered ones (rule 1; see
    `considered`), in time order."""
    entry = trade.entry_price
    stop = entry * (_ONE - setting.sl / _HUNDRED) if setting.sl else None
    target = entry * (_ONE + setting.target / _HUNDRED) if setting.target else None
    keep = (_ONE - setting.tsl / _HUNDRED) if setting.tsl else None
    peak: Decimal | None = None  # highest high of the candles already considered
    for c in candles:
        trail = peak * keep if keep is not None and peak is not None else None
        if trail is not None and (stop is None or trail > stop):
            active, why = trail, TRAILING
        else:
            active, why = stop, STOP_LOSS
        if active is not None and c.open <= active:
            return Exit(trade.entry_time, entry, c.start, c.open, why)
        if target is not None and c.open >= target:
            return Exit(trade.entry_time, entry, c.start, c.open, TARGET)
        if active is not None and c.low <= active:
            return Exit(trade.entry_time, entry, c.start, active, why)
        if target is not None and c.high >= target:
            return Exit(trade.entry_time, entry, c.start, target, TARGET)
        if peak is None or c.high > peak:
            peak = c.high
    return Exit(trade.entry_time, entry, trade.exit_time, trade.exit_price, SIGNAL)


def signal_price(candles: Sequence[Candle], at: datetime, fallback: Decimal) -> Decimal:
    """The price an exit signal received at `at` would have got, for a signal that carried
    none (a link's exit alert without `price`): the open of the candle of its minute, else
    of the first candle after it, else the close of the last candle before it, else
    `fallback`. `candles` sorted by start."""
    minute = _minute(at)
    i = bisect_left([c.start for c in candles], minute)
    if i < len(candles):
        return candles[i].open
    return candles[-1].close if candles else fallback

