"""Per-tick exit evaluation in integer paise, with `exits` as the single source of the rules.

The monitor sees tens of thousands of ticks a second; building a Decimal `PositionView` for
each would cost more than everything else together. Almost every tick changes nothing, and
that can be decided with integer comparisons because the persisted stop is always ratcheted:

- a price at or below the recorded peak cannot move the trail, so the effective stop is the
  stored one and only `price <= stop` / `price >= target` need checking;
- a price above the peak is a new peak, and a trailing stop always sits at least a tick below
  its peak, so a new peak never hits the stop; the new trail comes from
  `exits.ratchet_trailing_stop` (the slow path, only on new peaks).

Whenever a level is crossed, `exits.evaluate_exit` makes the actual decision (reason, trigger
level), so the fast path can only ever skip work, never invent an exit. A property test
compares this module with `evaluate_exit` on random paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from ats_app.engine.core.money import to_paise, to_rupees
from ats_app.engine.exits import rules as exits

__all__ = ["Tracked", "on_price", "view_of"]


@dataclass(slots=True)
class Tracked:
    """One watched position; prices in paise. Mutated only by the monitor's main thread."""

    position_id: int
    user_id: int
    account_id: int | None
    exchange: str
    token: str
    symbol: str
    sign: int  # +1 LONG, -1 SHORT: every comparison is made on sign * price
    quantity: int
    entry: int
    initial_stop: int | None
    stop: int | None  # effective stop (stop-loss or trailing, whichever is tighter)
    target: int | None
    peak: int
    tick: int
    rules: exits.ExitRules  # only trailing_stop_pct matters here: the levels are stored
    state: str = "OPEN"  # OPEN: evaluated; EXITING: claimed (or being claimed), not evaluated
    broker_stop: bool = False  # its stop also rests at the broker: trail moves go there too
    last_price: int | None = None

    @property
    def instrument(self) -> str:
        return f"{self.exchange.upper()}:{self.token}"

    @property
    def side(self) -> exits.Side:
        return exits.Side.LONG if self.sign > 0 else exits.Side.SHORT

    def pnl_paise(self, price: int) -> int:
        return (price - self.entry) * self.quantity * self.sign


def _rupees(paise: int | None) -> Decimal | None:
    return to_rupees(paise)


def view_of(t: Tracked) -> exits.PositionView:
    return exits.PositionView(
        side=t.side,
        entry_price=_rupees(t.entry),  # type: ignore[arg-type]
        quantity=t.quantity,
        initial_stop=_rupees(t.initial_stop),
        current_stop=_rupees(t.stop),
        target=_rupees(t.target),
        peak_price=_rupees(t.peak),  # type: ignore[arg-type]
        tick_size=_rupees(t.tick),  # type: ignore[arg-type]
    )


def on_price(t: Tracked, price: int, now: datetime) -> tuple[bool, exits.ExitDecision | None]:
    """Apply one price to an OPEN position. Returns (trail_changed, decision).

    `trail_changed` says the peak (and maybe the stop) moved and should be persisted; a
    decision means the caller must claim the position and enqueue its one sell.
    """
    t.last_price = price
    if t.state != "OPEN":
        return False, None
    s = t.sign
    changed = False
    if s * price > s * t.peak:
        # Slow path, new peak: let the pure rules compute the trail from the old view.
        trail = exits.ratchet_trailing_stop(view_of(t), Decimal(price) / 100, t.rules)
        t.peak = price
        if trail is not None:
            t.stop = to_paise(trail)
        changed = True
    stop_hit = t.stop is not None and s * price <= s * t.stop
    target_hit = t.target is not None and s * price >= s * t.target
    if not (stop_hit or target_hit):
        return changed, None
    decision = exits.evaluate_exit(view_of(t), Decimal(price) / 100, now, t.rules)
    return changed, decision
