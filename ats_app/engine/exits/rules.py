"""Exit rules: stop-loss, target and trailing stop, as pure functions over Decimal prices.

Nothing here mutates or persists. The monitor calls `evaluate_exit` on each tick and acts on
the decision; otherwise it persists whatever `update_peak` and `ratchet_trailing_stop`
return (each returns None when nothing changed). The time is a parameter, so one function
serves live, paper and replay.

Levels and rounding (all prices in rupees, on the instrument's tick grid):
- stop-loss at entry x (1 - SL%), target at entry x (1 + target%), trailing stop at
  peak x (1 - TSL%), where the "peak" is the most favourable price since entry (the highest
  for a LONG, the lowest for a SHORT). SHORT mirrors every rule.
- Every level is rounded to the tick *toward the price it is measured from* (entry or peak),
  so it fires no later than the exact level: a long's stop rounds up (a tick less loss,
  never a tick more), a long's target rounds down (the exit fires at the first tradable
  price at or inside the target, giving up at most one tick). A level that would round
  onto its reference price is kept one tick away from it, so a tiny percentage cannot
  fire on the entry tick itself.
- `initial_stop` is the stop-loss level alone and never changes; `current_stop` is the
  effective stop (the tighter of stop-loss and trailing stop). An exit at a stop tighter
  than `initial_stop` is a TRAILING_STOP, otherwise a STOP_LOSS. So with SL 5 % and TSL
  2 %, a straight 2 % drop from entry exits as TRAILING_STOP: the 5 % stop was not hit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum

__all__ = [
    "ExitDecision",
    "ExitReason",
    "ExitRules",
    "PositionView",
    "Side",
    "effective_stop",
    "evaluate_exit",
    "initial_levels",
    "open_position",
    "ratchet_trailing_stop",
    "update_peak",
]

_HUNDRED = Decimal(100)


class Side(StrEnum):
    LONG = "LONG"
    SHORT = "SHORT"


class ExitReason(StrEnum):
    """Why a position closed. Values are the `exit_reason` strings of positions' JSON."""

    STOP_LOSS = "stop_loss"
    TARGET = "target"
    TRAILING_STOP = "trailing_stop"
    SIGNAL = "signal"  # a sell/exit alert
    MANUAL = "manual"
    SQUARE_OFF = "square_off"
    KILL_SWITCH = "kill_switch"
    STOP_LOSS_AT_BROKER = "stop_loss_at_broker"  # the resting stop filled at the broker


def _check_decimal(name: str, value: object) -> Decimal:
    # Floats would silently carry binary rounding error into prices.
    if not isinstance(value, Decimal):
        raise TypeError(f"{name} must be a Decimal, got {type(value).__name__} {value!r}")
    if not value.is_finite():
        raise ValueError(f"{name} must be a finite number, got {value}")
    return value


def _check_pct(name: str, value: Decimal | None, upper: Decimal, inclusive: bool) -> None:
    if value is None:
        return
    _check_decimal(name, value)
    too_high = value > upper if inclusive else value >= upper
    if value <= 0 or too_high:
        bound = f"<= {upper}" if inclusive else f"< {upper}"
        raise ValueError(f"{name} must be > 0 and {bound}, got {value}")


@dataclass(frozen=True)
class ExitRules:
    """A link's exit settings in percent; None switches a rule off."""

    stop_loss_pct: Decimal | None = None
    target_pct: Decimal | None = None
    trailing_stop_pct: Decimal | None = None

    def __post_init__(self) -> None:
        _check_pct("stop_loss_pct", self.stop_loss_pct, _HUNDRED, inclusive=False)
        _check_pct("target_pct", self.target_pct, Decimal(1000), inclusive=True)
        _check_pct("trailing_stop_pct", self.trailing_stop_pct, _HUNDRED, inclusive=False)

    @classmethod
    def from_settings(
        cls,
        stop_loss_pct: float | str | Decimal | None = None,
        target_pct: float | str | Decimal | None = None,
        trailing_stop_pct: float | str | Decimal | None = None,
    ) -> ExitRules:
        """Build from stored settings (floats or strings), going through `str` so 0.1
        becomes Decimal("0.1"), not its binary approximation."""
        return cls(
            _to_decimal(stop_loss_pct), _to_decimal(target_pct), _to_decimal(trailing_stop_pct)
        )


def _to_decimal(value: float | str | Decimal | None) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(str(value))


@dataclass(frozen=True)
class PositionView:
    """What the exit rules need to know about one open position (a read-only snapshot)."""

    side: Side
    entry_price: Decimal
    quantity: int
    initial_stop: Decimal | None
    current_stop: Decimal | None
    target: Decimal | None
    peak_price: Decimal  # most favourable price since entry; starts at the entry price
    tick_size: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "side", Side(self.side))  # accept "LONG" / "SHORT"
        for name in ("entry_price", "peak_price", "tick_size"):
            if _check_decimal(name, getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not isinstance(self.quantity, int) or isinstance(self.quantity, bool):
            raise TypeError(f"quantity must be an int, got {self.quantity!r}")
        if self.quantity <= 0:
            raise ValueError(f"quantity must be > 0, got {self.quantity}")
        for name in ("initial_stop", "current_stop", "target"):
            if getattr(self, name) is not None:
                _check_decimal(name, getattr(self, name))
        self._check_levels()

    def _check_levels(self) -> None:
        side, entry, stop = self.side, self.entry_price, self.initial_stop
        if _better(side, entry, self.peak_price):
            raise ValueError(f"peak_price {self.peak_price} is worse than the entry")
        if stop is not None and (stop < 0 or not _better(side, entry, stop)):
            raise ValueError(f"initial_stop {stop} is not on the loss side of the entry")
        if stop is not None and (
            self.current_stop is None or _better(side, stop, self.current_stop)
        ):
            raise ValueError("current_stop must be set and no looser than initial_stop")
        if self.target is not None and not _better(side, self.target, entry):
            raise ValueError(f"target {self.target} is not on the profit side of the entry")


@dataclass(frozen=True)
class ExitDecision:
    """An instruction to exit. The caller marks the position EXITING and sends one order."""

    reason: ExitReason
    trigger_price: Decimal | None  # the level that fired; None for manual/square-off exits
    observed_price: Decimal  # the price that crossed it; differs from trigger on a gap
    at: datetime


def _better(side: Side, a: Decimal, b: Decimal) -> bool:
    """True when price `a` is strictly more favourable than `b` for this side."""
    return a > b if side is Side.LONG else a < b


def _tighter(side: Side, a: Decimal, b: Decimal | None) -> bool:
    """True when stop `a` locks in more than stop `b` (any stop beats no stop)."""
    return b is None or _better(side, a, b)


def _level_below(ref: Decimal, raw: Decimal, tick: Decimal) -> Decimal:
    """A level under `ref`, rounded up toward it but kept at least a tick below it."""
    rounded = (raw / tick).to_integral_value(rounding=ROUND_CEILING) * tick
    last_below = (ref / tick).to_integral_value(rounding=ROUND_CEILING) * tick - tick
    return min(rounded, last_below)


def _level_above(ref: Decimal, raw: Decimal, tick: Decimal) -> Decimal:
    """A level over `ref`, rounded down toward it but kept at least a tick above it."""
    rounded = (raw / tick).to_integral_value(rounding=ROUND_FLOOR) * tick
    first_above = (ref / tick).to_integral_value(rounding=ROUND_FLOOR) * tick + tick
    return max(rounded, first_above)


def _adverse_level(side: Side, ref: Decimal, pct: Decimal, tick: Decimal) -> Decimal:
    """A stop `pct` away from `ref` on the losing side."""
    if side is Side.LONG:
        return _level_below(ref, ref * (1 - pct / _HUNDRED), tick)
    return _level_above(ref, ref * (1 + pct / _HUNDRED), tick)


def _favourable_level(side: Side, ref: Decimal, pct: Decimal, tick: Decimal) -> Decimal:
    """A target `pct` away from `ref` on the winning side."""
    if side is Side.LONG:
        return _level_above(ref, ref * (1 + pct / _HUNDRED), tick)
    return _level_below(ref, ref * (1 - pct / _HUNDRED), tick)


def initial_levels(
    side: Side | str, entry_price: Decimal, rules: ExitRules, tick_size: Decimal
) -> tuple[Decimal | None, Decimal | None]:
    """(stop-loss, target) for a new position; None where the rule is off.

    The stop is the stop-loss level alone: the trailing stop from the entry comes from
    `ratchet_trailing_stop` (or use `open_position`, which does both).
    """
    side = Side(side)
    for name, value in (("entry_price", entry_price), ("tick_size", tick_size)):
        if _check_decimal(name, value) <= 0:
            raise ValueError(f"{name} must be > 0, got {value}")
    stop = target = None
    if rules.stop_loss_pct is not None:
        stop = _adverse_level(side, entry_price, rules.stop_loss_pct, tick_size)
    if rules.target_pct is not None:
        target = _favourable_level(side, entry_price, rules.target_pct, tick_size)
    return stop, target


def open_position(
    side: Side | str, entry_price: Decimal, quantity: int, rules: ExitRules, tick_size: Decimal
) -> PositionView:
    """The view of a just-filled position: stop-loss, target and the trail from the entry."""
    stop, target = initial_levels(side, entry_price, rules, tick_size)
    position = PositionView(
        Side(side), entry_price, quantity, stop, stop, target, entry_price, tick_size
    )
    trail = ratchet_trailing_stop(position, entry_price, rules)
    if trail is None:
        return position
    return PositionView(
        position.side, entry_price, quantity, stop, trail, target, entry_price, tick_size
    )


def _check_price(price: Decimal) -> None:
    if _check_decimal("price", price) <= 0:
        raise ValueError(f"price must be > 0, got {price}")


def _best(side: Side, a: Decimal, b: Decimal) -> Decimal:
    return a if not _better(side, b, a) else b


def update_peak(position: PositionView, price: Decimal) -> Decimal | None:
    """The new peak if `price` beats the recorded one, else None (nothing to persist)."""
    _check_price(price)
    return price if _better(position.side, price, position.peak_price) else None


def ratchet_trailing_stop(
    position: PositionView, price: Decimal, rules: ExitRules
) -> Decimal | None:
    """The trailing stop after `price`, only if it is tighter than the current stop.

    Returns None when trailing is off or the stop would not tighten: it never loosens.
    """
    _check_price(price)
    if rules.trailing_stop_pct is None:
        return None
    peak = _best(position.side, position.peak_price, price)
    trail = _adverse_level(position.side, peak, rules.trailing_stop_pct, position.tick_size)
    return trail if _tighter(position.side, trail, position.current_stop) else None


def effective_stop(position: PositionView, price: Decimal, rules: ExitRules) -> Decimal | None:
    """The stop in force at `price`, counting a trail the caller has not persisted yet."""
    trail = ratchet_trailing_stop(position, price, rules)
    return position.current_stop if trail is None else trail


def _stop_hit(side: Side, price: Decimal, stop: Decimal) -> bool:
    return price <= stop if side is Side.LONG else price >= stop


def _target_hit(side: Side, price: Decimal, target: Decimal) -> bool:
    return price >= target if side is Side.LONG else price <= target


def _stop_reason(position: PositionView, stop: Decimal) -> ExitReason:
    if _tighter(position.side, stop, position.initial_stop):
        return ExitReason.TRAILING_STOP
    return ExitReason.STOP_LOSS


def evaluate_exit(
    position: PositionView, price: Decimal, now: datetime, rules: ExitRules
) -> ExitDecision | None:
    """Whether `price` exits the position, and why; None to keep holding.

    Priority: the stop (stop-loss or trailing) before the target. One price can satisfy
    both only when a trailing stop has been ratcheted beyond the target, i.e. the price is
    falling back through the trail: the stop is what happened, and it is the conservative
    answer (it never reports a better exit than the market gave).
    """
    _check_price(price)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    stop = effective_stop(position, price, rules)
    if stop is not None and _stop_hit(position.side, price, stop):
        return ExitDecision(_stop_reason(position, stop), stop, price, now)
    target = position.target
    if target is not None and _target_hit(position.side, price, target):
        return ExitDecision(ExitReason.TARGET, target, price, now)
    return None
