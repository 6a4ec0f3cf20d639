"""The risk gate in the order path: load a user's limits and day, ask `risk.check`, record.

`check_entry` is what the pipeline calls before it writes an entry order row. A refusal is
returned as a `Denied` (and audited as `risk.denied`), never raised. Exits never come here.

Counts are read, not reserved: two entries for the same user decided in the same instant by
two workers can both take the last slot of a limit (at most one order per extra worker).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

import redis
import sqlalchemy as sa
from sqlalchemy import Select, func
from sqlmodel import Session, col, select

from ats_app.engine.core.config import settings
from ats_app.engine.core.errors import NotFound, ValidationError
from ats_app.engine.core.fsm import FILL_TO_POSITION
from ats_app.engine.core.money import to_paise, to_rupees
from ats_app.engine.exits.claims import exit_all
from ats_app.engine.market import hours
from ats_app.engine.risk import policy as risk
from ats_app.engine.store import audit
from ats_app.engine.store.db import after_commit, joined, session_scope
from ats_app.engine.store.models import (
    BotState,
    BrokerAccount,
    Order,
    Position,
    RiskLimits,
    utcnow,
)

log = logging.getLogger("ats.risk")

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
LIMIT_FIELDS = ("max_open_positions", "max_lots_per_order", "max_orders_per_day",
                "daily_loss_limit", "exit_on_loss_limit", "square_off_at")


def parse_hhmm(text: str) -> time:
    m = _HHMM.match(text.strip())
    if not m:
        raise ValidationError(f"expected a time like 15:15, got {text!r}", field="square_off_at")
    return time(int(m.group(1)), int(m.group(2)))


def limits_of(row: RiskLimits | sa.Row[Any] | None) -> risk.Limits:
    if row is None:
        return risk.DEFAULT_LIMITS
    return risk.Limits(
        max_open_positions=row.max_open_positions,
        max_lots_per_order=row.max_lots_per_order,
        max_orders_per_day=row.max_orders_per_day,
        daily_loss_limit=to_rupees(row.daily_loss_limit_paise),
        exit_on_loss_limit=row.exit_on_loss_limit,
        square_off_at=parse_hhmm(row.square_off_at),
    )


def get_limits(session: Session, user_id: int) -> risk.Limits:
    # populate_existing: a job's session may have read the row before (the pre-check)
    return limits_of(session.get(RiskLimits, user_id, populate_existing=True))


def _count(value: Any, name: str) -> int | None:
    if value is None:
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{name.replace('_', ' ')} must be a whole number, got {value!r}",
                              field=name) from None
    if n < 0 or str(value).strip() not in (str(n), f"+{n}"):
        raise ValidationError(f"{name.replace('_', ' ')} must be a whole number >= 0, "
                              f"got {value!r}", field=name)
    return n


def _rupees(value: Any) -> int | None:
    if value is None or str(value).strip().lower() in ("", "off", "none"):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValidationError("daily_loss_limit must be an amount in rupees",
                              field="daily_loss_limit") from None
    if not amount.is_finite() or amount <= 0:
        raise ValidationError("daily_loss_limit must be > 0 (or 'off')", field="daily_loss_limit")
    return to_paise(amount)


def set_limits(session: Session, user_id: int, **changes: Any) -> risk.Limits:
    """Change some limits (the rest keep their value). Counts: None = no limit; the loss
    limit in rupees or None/'off'; square_off_at 'HH:MM' IST. Audited as `risk.limits_set`."""
    unknown = set(changes) - set(LIMIT_FIELDS)
    if unknown:
        raise ValidationError(f"unknown limit(s): {', '.join(sorted(unknown))}")
    row = session.get(RiskLimits, user_id)
    if row is None:  # insert the defaults first: an INSERT would turn None back into them
        row = RiskLimits(user_id=user_id)
        session.add(row)
        session.flush()
    for name in ("max_open_positions", "max_lots_per_order", "max_orders_per_day"):
        if name in changes:
            setattr(row, name, _count(changes[name], name))
    if "daily_loss_limit" in changes:
        row.daily_loss_limit_paise = _rupees(changes["daily_loss_limit"])
    if "exit_on_loss_limit" in changes:
        row.exit_on_loss_limit = bool(changes["exit_on_loss_limit"])
    if "square_off_at" in changes:
        at = parse_hhmm(str(changes["square_off_at"]))
        row.square_off_at = f"{at:%H:%M}"
    try:
        limits = limits_of(row)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    row.updated_at = utcnow()
    session.add(row)
    audit.record(session, "risk.limits_set", user_id=user_id,
                 **{k: str(v) if v is not None else None for k, v in changes.items()})
    return limits


def limits_view(limits: risk.Limits) -> dict[str, Any]:
    return {
        "max_open_positions": limits.max_open_positions,
        "max_lots_per_order": limits.max_lots_per_order,
        "max_orders_per_day": limits.max_orders_per_day,
        "daily_loss_limit": None if limits.daily_loss_limit is None
        else f"{limits.daily_loss_limit:.2f}",
        "exit_on_loss_limit": limits.exit_on_loss_limit,
        "square_off_at": f"{limits.square_off_at:%H:%M}",
    }


def day_start(at: datetime) -> datetime:
    """IST midnight of `at`'s trading day, as an aware datetime."""
    local = hours.ist(at)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def is_halted(session: Session, user_id: int) -> bool:
    """The kill switch holds until the bot is started again (see `risk.kill_switch`)."""
    row = session.get(RiskLimits, user_id)
    if row is None or row.halted_at is None:
        return False
    bot_row = session.get(BotState, user_id, populate_existing=True)
    return _holds(row.halted_at, bot_row.running if bot_row else None,
                  bot_row.updated_at if bot_row else None)


def _holds(halted_at: datetime | None, bot_running: bool | None,
           bot_changed_at: datetime | None) -> bool:
    """Engaged at `halted_at` and not released since: the bot was not started after it."""
    if halted_at is None:
        return False
    return not bot_running or bot_changed_at is None or bot_changed_at <= halted_at


def unrealized_pnl(positions: list[Position], conn: redis.Redis | None) -> Decimal:
    """Open positions at the feed's latest price (any age); a position without a price adds 0."""
    from ats_app.engine.broker.prices import read_tick

    total = Decimal(0)
    if conn is None:
        return total
    for p in positions:
        try:
            tick = read_tick(conn, p.exchange, p.symbol_token, max_age=None)
        except redis.RedisError:
            return total
        if tick is not None:
            total += (tick.ltp - (to_rupees(p.entry_price_paise) or Decimal(0))) * p.quantity
    return total


IN_FLIGHT = ("CREATED", "SUBMITTING", "UNKNOWN", "OPEN", "TRIGGER_PENDING", "PARTIALLY_FILLED")


_HELD = ("OPEN", "EXITING")  # a position counts as open until its sell has filled
_LIMITS = RiskLimits.__table__  # type: ignore[attr-defined]
_BOT = BotState.__table__  # type: ignore[attr-defined]


def _gate_read() -> Select:
    """The user's limits, kill switch and day in one statement, built once: every entry
    check runs it (twice per entry: before the contract and again under the user's lock).
    One row even for a user with no limits row or bot row (LEFT JOINs on a one-row
    select); building and cache-keying the subqueries per call cost more than the answer."""
    user, since = sa.bindparam("user_id"), sa.bindparam("since")
    is_open = col(Position.status).in_(_HELD)
    mine = Position.user_id == user
    entries = (select(func.count()).select_from(Order).where(Order.user_id == user)
               .where(Order.purpose == "ENTRY"))
    one = sa.select(sa.literal(1).label("one")).subquery()
    return sa.select(
        _LIMITS.c.user_id.label("has_limits"),
        *(_LIMITS.c[name] for name in (*_LIMIT_COLUMNS, "halted_at")),
        _BOT.c.running.label("bot_running"),
        _BOT.c.updated_at.label("bot_updated_at"),
        select(func.count()).select_from(Position).where(mine).where(is_open)
        .scalar_subquery().label("open_count"),
        entries.where(Order.status != "FAILED").where(col(Order.created_at) >= since)
        .scalar_subquery().label("orders_today"),
        select(func.coalesce(func.sum(Position.realized_pnl_paise), 0))
        .where(mine).where(Position.status == "CLOSED")
        .where(col(Position.closed_at) >= since).scalar_subquery().label("realized"),
        # An entry still on its way to a fill will be a position: count it, or two alerts
        # in flight could both pass a "max open positions" check. So is one filled a moment
        # ago whose position is not written yet: the order-update stream and the follower
        # commit the fill first, then open the position (between the two, a second alert
        # passed the check and both filled).
        entries.where(col(Order.position_id).is_(None)).where(sa.or_(
            col(Order.status).in_(IN_FLIGHT),
            sa.and_(Order.filled_quantity > 0, col(Order.updated_at) >= sa.bindparam("recent"))))
        .scalar_subquery().label("in_flight"),
    ).select_from(
        one.outerjoin(_LIMITS, _LIMITS.c.user_id == user).outerjoin(_BOT, _BOT.c.user_id == user)
    )


_LIMIT_COLUMNS = ("max_open_positions", "max_lots_per_order", "max_orders_per_day",
                  "daily_loss_limit_paise", "exit_on_loss_limit", "square_off_at")
_GATE_READ = _gate_read()


def read_gate(session: Session, user_id: int, at: datetime, conn: redis.Redis | None = None,
              *, unrealized: bool | None = None) -> tuple[risk.Limits, risk.RiskState]:
    """The user's limits and day as the gate sees them, fresh from the database (one
    statement). `unrealized`: price the open positions (None: only when a daily loss limit
    needs it; their count is always there)."""
    row = session.execute(_GATE_READ, {"user_id": user_id, "since": day_start(at),
                                       "recent": utcnow() - FILL_TO_POSITION}).one()
    limits = limits_of(row if row.has_limits is not None else None)
    if unrealized is None:
        unrealized = limits.daily_loss_limit is not None
    open_positions = (list(session.exec(
        select(Position).where(Position.user_id == user_id)
        .where(col(Position.status).in_(_HELD))).all())
        if unrealized and row.open_count else [])
    return limits, risk.RiskState(
        open_positions=int(row.open_count) + int(row.in_flight),
        orders_today=int(row.orders_today),
        realized_pnl=to_rupees(int(row.realized)) or Decimal(0),
        unrealized_pnl=unrealized_pnl(open_positions, conn),
        halted=_holds(row.halted_at, row.bot_running, row.bot_updated_at),
        market_mode=settings().market_hours,
        calendar=None,
    )


@dataclass(frozen=True)
class GateResult:
    decision: risk.Decision
    limits: risk.Limits
    state: risk.RiskState


def evaluate(user_id: int, at: datetime, lots: int | None = None,
             conn: redis.Redis | None = None) -> GateResult:
    with session_scope() as s:
        limits, state = read_gate(s, user_id, at, conn, unrealized=True)
    return GateResult(risk.check(risk.OrderContext(at=at, lots=lots), limits, state),
                      limits, state)


def check_entry(user_id: int, *, lots: int | None = None, alert_id: int | None = None,
                account_id: int | None = None, conn: redis.Redis | None = None,
                at: datetime | None = None, session: Session | None = None) -> str | None:
    """The pipeline's gate: None to go ahead, or the refusal's reason (audited).

    `session`: read and record in the caller's transaction; the refusal's audit event (and
    the exit of every position a breached loss limit asks for) then wait for its commit."""
    at = at or hours.now()
    with joined(session) as s:
        limits, state = read_gate(s, user_id, at, conn)
        decision = risk.check(risk.OrderContext(at=at, lots=lots), limits, state)
        if isinstance(decision, risk.Approved):
            return None
        audit.record(s, "risk.denied", user_id=user_id,
                     subject=str(alert_id) if alert_id else None, rule=decision.rule,
                     reason=decision.reason, account_id=account_id, lots=lots,
                     at=at.isoformat())
        if decision.rule == "daily_loss" and limits.exit_on_loss_limit and state.open_positions:
            after_commit(s, lambda: exit_all(user_id, "loss_limit", conn))
    return f"risk: {decision.reason}"


def _account_rows(session: Session, user_id: int, account_ids: list[int]
                  ) -> dict[int, tuple[risk.AccountLimits, int]]:
    """Each account's own limits and what it holds (positions held + entries in flight)."""
    if not account_ids:
        return {}
    held = dict(session.exec(
        select(Position.account_id, func.count()).where(Position.user_id == user_id)
        .where(col(Position.account_id).in_(account_ids)).where(col(Position.status).in_(_HELD))
        .group_by(col(Position.account_id))).all())
    flying = dict(session.exec(
        select(Order.account_id, func.count()).where(Order.user_id == user_id)
        .where(col(Order.account_id).in_(account_ids)).where(Order.purpose == "ENTRY")
        .where(col(Order.position_id).is_(None)).where(col(Order.status).in_(IN_FLIGHT))
        .group_by(col(Order.account_id))).all())
    rows = session.exec(
        select(BrokerAccount.id, BrokerAccount.max_open_positions,
               BrokerAccount.max_lots_per_order)
        .where(BrokerAccount.user_id == user_id).where(col(BrokerAccount.id).in_(account_ids))
    ).all()
    return {aid: (risk.AccountLimits(cap, lots), int(held.get(aid, 0)) + int(flying.get(aid, 0)))
            for aid, cap, lots in rows}


def check_fanout(user_id: int, asks: list[tuple[int | None, int]], *, alert_id: int,
                 conn: redis.Redis | None, session: Session,
                 at: datetime | None = None) -> list[str | None]:
    """The gate for one alert's entries on several accounts at once: `asks` are (account id,
    lots) in the link's order; returns, per account, None to go ahead or the refusal's
    reason. One read of the user's day and one of the accounts', then `risk.check_fanout`
    (each approved entry counts for the next). Every refusal is audited with its account.
    The caller holds the user's risk lock and writes the approved orders under it."""
    at = at or hours.now()
    limits, state = read_gate(session, user_id, at, conn)
    accounts = _account_rows(session, user_id, [a for a, _ in asks if a is not None])
    ask_rows = []
    for account_id, lots in asks:
        own, held = accounts.get(account_id, (risk.AccountLimits(), 0)) if account_id else (
            risk.AccountLimits(), 0)
        ask_rows.append(risk.AccountAsk(account_id, lots, own, held))
    answers: list[str | None] = []
    for ask, decision in zip(ask_rows, risk.check_fanout(at, ask_rows, limits, state),
                             strict=True):
        if isinstance(decision, risk.Approved):
            answers.append(None)
            continue
        audit.record(session, "risk.denied", user_id=user_id, subject=str(alert_id),
                     rule=decision.rule, reason=decision.reason, account_id=ask.account_id,
                     lots=ask.lots, at=at.isoformat())
        answers.append(f"risk: {decision.reason}")
        if decision.rule == "daily_loss" and limits.exit_on_loss_limit and state.open_positions:
            after_commit(session, lambda: exit_all(user_id, "loss_limit", conn))
    return answers


ACCOUNT_LIMIT_FIELDS = ("max_open_positions", "max_lots_per_order")


def set_account_limits(session: Session, user_id: int, account_id: int,
                       **changes: Any) -> risk.AccountLimits:
    """Change an account's own limits (None/''/'off': only the user's apply). Scoped to the
    user: another user's account is `NotFound`. Audited as `risk.account_limits_set` when a
    value changes (the Accounts page's form sends both on every save)."""
    unknown = set(changes) - set(ACCOUNT_LIMIT_FIELDS)
    if unknown:
        raise ValidationError(f"unknown account limit(s): {', '.join(sorted(unknown))}")
    row = session.get(BrokerAccount, account_id)
    if row is None or row.user_id != user_id:
        raise NotFound(f"broker account {account_id} not found")
    changed: dict[str, int | None] = {}
    for name in ACCOUNT_LIMIT_FIELDS:
        if name in changes:
            value = changes[name]
            off = value is None or str(value).strip().lower() in ("", "off", "none")
            new = None if off else _count(value, name)
            if new != getattr(row, name):
                changed[name] = new
    if changed:
        for name, new in changed.items():
            setattr(row, name, new)
        row.updated_at = utcnow()
        session.add(row)
        audit.record(session, "risk.account_limits_set", user_id=user_id,
                     account_id=account_id,
                     **{k: str(v) if v is not None else None for k, v in changed.items()})
    return account_limits(row)


def account_limits(row: BrokerAccount) -> risk.AccountLimits:
    return risk.AccountLimits(row.max_open_positions, row.max_lots_per_order)


def loss_breached(user_id: int, at: datetime, conn: redis.Redis | None) -> bool:
    with session_scope() as s:
        limits, state = read_gate(s, user_id, at, conn)
    return limits.exit_on_loss_limit and risk.loss_limit_hit(limits, state)


def accounts_view(session: Session, user_id: int) -> list[dict[str, Any]]:
    """Every account of the user with its own limits and what it holds now (positions held
    + entries in flight, as `check_fanout` counts them), in id order: for `risk show` and
    the Accounts page. Only the user's own accounts are read."""
    rows = session.exec(
        select(BrokerAccount.id, BrokerAccount.label).where(BrokerAccount.user_id == user_id)
        .order_by(col(BrokerAccount.id))).all()
    held = _account_rows(session, user_id, [aid for aid, _ in rows if aid is not None])
    out: list[dict[str, Any]] = []
    for aid, label in rows:
        own, open_now = held.get(aid, (risk.AccountLimits(), 0)) if aid is not None else (
            risk.AccountLimits(), 0)
        out.append({"account_id": aid, "label": label,
                    "max_open_positions": own.max_open_positions,
                    "max_lots_per_order": own.max_lots_per_order,
                    "open_positions": open_now})
    return out
