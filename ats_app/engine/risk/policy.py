"""The risk gate's decision: pure, no I/O. `check(order, limits, state) -> Approved | Denied`.

A refusal is a decision carrying a reason (and the rule that made it), never an exception:
the caller records it on the alert and in the audit log. Only entries are checked: closing
risk (sell/exit signals, stops, square-off, the kill switch) is always allowed.

Boundary semantics, one rule for every limit: a limit of N is the largest amount allowed.
- max open positions N: an entry with N-1 open is approved (it makes N); with N open, denied.
- max lots per order N: N lots approved, N+1 denied.
- max orders per day N: the N-th entry order of the IST day approved, the (N+1)-th denied.
- daily loss limit L rupees: denied once the day's loss (realized + unrealized) reaches L
  (loss == L is "hit"); a loss of L - 0.01 still trades.
- square-off time T (IST): entries at T or later are denied (their position would be closed
  at once); one second before T is approved.
- market hours: 09:15:00 approved, 15:30:00 denied (see `market.hours`).
A limit set to None is off. Checks run in a fixed order, the first refusal wins: kill switch,
market hours, square-off time, daily loss, orders per day, open positions, lots per order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, time
from decimal import Decimal

from ats_app.engine.market import hours as market_hours
from ats_app.engine.market.hours import Calendar

__all__ = [
    "DEFAULT_LIMITS",
    "AccountAsk",
    "AccountLimits",
    "Approved",
    "Decision",
    "Denied",
    "Limits",
    "OrderContext",
    "RiskState",
    "check",
    "check_fanout",
    "loss_limit_hit",
]


@dataclass(frozen=True)
class Limits:
    max_open_positions: int | None = 5
    max_lots_per_order: int | None = 10
    max_orders_per_day: int | None = 50
    daily_loss_limit: Decimal | None = None  # rupees, positive; None: no loss limit
    exit_on_loss_limit: bool = False  # when hit, also exit every open position
    square_off_at: time = time(15, 15)  # IST: intraday positions are exited, entries refused

    def __post_init__(self) -> None:
        for name in ("max_open_positions", "max_lots_per_order", "max_orders_per_day"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a whole number >= 0 or None, got {value!r}")
        if self.daily_loss_limit is not None and self.daily_loss_limit <= 0:
            raise ValueError(f"daily_loss_limit must be > 0 or None, got {self.daily_loss_limit}")
        if not market_hours.OPEN < self.square_off_at <= market_hours.CLOSE:
            raise ValueError("square_off_at must be after 09:15 and not after 15:30 IST")


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class OrderContext:
    """The entry about to be placed."""

    at: datetime  # aware; when the order would be placed
    lots: int | None = None  # None: not known yet (the pre-check before contract resolution)


@dataclass(frozen=True)
class RiskState:
    """The user's day so far, as the gate found it."""

    open_positions: int = 0  # OPEN or EXITING
    orders_today: int = 0  # entry orders created today (IST), not counting this one
    realized_pnl: Decimal = Decimal(0)  # rupees, positions closed today
    unrealized_pnl: Decimal = Decimal(0)  # rupees, open positions at their latest price
    halted: bool = False  # the kill switch is engaged
    market_mode: str = "nse"  # MARKET_HOURS
    calendar: Calendar | None = None  # None: the default holiday file

    @property
    def day_pnl(self) -> Decimal:
        return self.realized_pnl + self.unrealized_pnl


@dataclass(frozen=True)
class Approved:
    approved: bool = True
    reason: str = "approved"


@dataclass(frozen=True)
class Denied:
    reason: str
    rule: str  # machine-readable: halted, market_hours, square_off, daily_loss, ...
    approved: bool = False


Decision = Approved | Denied


def loss_limit_hit(limits: Limits, state: RiskState) -> bool:
    return limits.daily_loss_limit is not None and -state.day_pnl >= limits.daily_loss_limit


def check(order: OrderContext, limits: Limits, state: RiskState) -> Decision:
    """Approve or deny one entry order (see the module docstring for the order and bounds)."""
    if state.halted:
        return Denied("kill switch engaged: start the bot again to resume trading", "halted")
    open_, why = market_hours.is_open(order.at, state.calendar, state.market_mode)
    if not open_:
        return Denied(why, "market_hours")
    local = market_hours.ist(order.at).time()
    if state.market_mode != "always" and local >= limits.square_off_at:
        return Denied(f"after the square-off time {limits.square_off_at:%H:%M} IST", "square_off")
    if loss_limit_hit(limits, state):
        return Denied(
            f"daily loss limit hit: loss {-state.day_pnl:.2f} >= limit "
            f"{limits.daily_loss_limit:.2f} rupees",
            "daily_loss",
        )
    if limits.max_orders_per_day is not None and state.orders_today >= limits.max_orders_per_day:
        return Denied(
            f"max orders per day reached ({state.orders_today} of {limits.max_orders_per_day})",
            "max_orders_per_day",
        )
    if limits.max_open_positions is not None and state.open_positions >= limits.max_open_positions:
        return Denied(
            f"max open positions reached ({state.open_positions} of "
            f"{limits.max_open_positions})",
            "max_open_positions",
        )
    if (limits.max_lots_per_order is not None and order.lots is not None
            and order.lots > limits.max_lots_per_order):
        return Denied(
            f"{order.lots} lots is over the max of {limits.max_lots_per_order} per order",
            "max_lots_per_order",
        )
    return Approved()


# --------------------------------------------------------------------------- per account


@dataclass(frozen=True)
class AccountLimits:
    """An account's own limits, beside its user's (None: only the user's apply)."""

    max_open_positions: int | None = None
    max_lots_per_order: int | None = None


@dataclass(frozen=True)
class AccountAsk:
    """One account's share of a fan-out: its lots, its limits and what it holds now."""

    account_id: int | None
    lots: int
    limits: AccountLimits = AccountLimits()
    open_positions: int = 0  # this account's OPEN/EXITING positions and entries in flight


def _check_account(ask: AccountAsk) -> Decision:
    cap = ask.limits.max_open_positions
    if cap is not None and ask.open_positions >= cap:
        return Denied(f"account's max open positions reached ({ask.open_positions} of {cap})",
                      "account_max_open_positions")
    lots_cap = ask.limits.max_lots_per_order
    if lots_cap is not None and ask.lots > lots_cap:
        return Denied(f"{ask.lots} lots is over the account's max of {lots_cap} per order",
                      "account_max_lots_per_order")
    return Approved()


def check_fanout(at: datetime, asks: list[AccountAsk], limits: Limits,
                 state: RiskState) -> list[Decision]:
    """One alert's entries on several accounts, decided in the link's account order: each
    approved one counts against the user's limits for the next (an order each, a position
    each), so N accounts cannot take N slots of a limit with one slot left. The user's rules
    first, then the account's own."""
    decisions: list[Decision] = []
    taken = 0
    for ask in asks:
        now = replace(state, open_positions=state.open_positions + taken,
                      orders_today=state.orders_today + taken)
        decision = check(OrderContext(at=at, lots=ask.lots), limits, now)
        if isinstance(decision, Approved):
            decision = _check_account(ask)
        if isinstance(decision, Approved):
            taken += 1
        decisions.append(decision)
    return decisions
