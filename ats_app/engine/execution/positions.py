"""Positions: opened by a filled entry, closed by a filled exit — each exactly once.

Position rule (documented in README): one open position per link and account. A new entry
while one is open is ignored (recorded); sell/exit closes it; an exit with nothing open is
recorded and ignored. Position state, not the alert stream, decides.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import redis
import sqlalchemy as sa
from sqlalchemy import bindparam, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from ats_app.engine.core.fsm import FILL_TO_POSITION, OrderStatus, is_terminal
from ats_app.engine.core.money import to_paise, to_rupees
from ats_app.engine.execution.order_store import locked
from ats_app.engine.exits import rules as exits
from ats_app.engine.store import audit, live
from ats_app.engine.store.db import after_commit, joined
from ats_app.engine.store.models import Order, Position, WebhookLink, utcnow

log = logging.getLogger("ats.positions")

POSITIONS_CHANNEL = "ats:positions"  # the monitor subscribes/unsubscribes instruments on it


_POSITIONS = Position.__table__  # type: ignore[attr-defined]


def _open_id(account: sa.ColumnElement[bool]) -> sa.Select:
    return (sa.select(_POSITIONS.c.id)
            .where(_POSITIONS.c.status.in_(("OPEN", "EXITING")))
            .where(_POSITIONS.c.link_id == bindparam("link")).where(account).limit(1))


# Built once (one per kind of account: "= NULL" would match nothing).
_OPEN_ID = _open_id(_POSITIONS.c.account_id == bindparam("account"))
_OPEN_ID_NO_ACCOUNT = _open_id(_POSITIONS.c.account_id.is_(None))


def open_position_id(session: Session, link_id: int, account_id: int | None) -> int | None:
    """The id of the link's open (or exiting) position on this account, if any: the rule is
    one per link and account."""
    if account_id is None:
        return session.execute(_OPEN_ID_NO_ACCOUNT, {"link": link_id}).scalar()
    return session.execute(_OPEN_ID, {"link": link_id, "account": account_id}).scalar()


# An entry still working at the broker, or filled a moment ago and not yet a position.
_WORKING = [st.value for st in OrderStatus if not is_terminal(st)]


def busy_accounts(session: Session, link_id: int, account_ids: list[int],
                  alert_id: int) -> dict[int, str]:
    """Which of these accounts already hold — or are about to hold — the link's position:
    an open one, or another alert's entry still on its way to a fill. Read under the user's
    lock with the rows that lock guards, so two alerts at once cannot both enter (the rule
    is one position per link and account, whatever the broker's pace). Returns why, per
    account."""
    if not account_ids:
        return {}
    busy: dict[int, str] = {}
    held = session.exec(
        select(Position.account_id, Position.id).where(Position.link_id == link_id)
        .where(col(Position.account_id).in_(account_ids))
        .where(col(Position.status).in_(("OPEN", "EXITING")))).all()
    for account_id, position_id in held:
        if account_id is not None:
            busy[account_id] = ("a position is already open for this link and account "
                                f"(#{position_id})")
    recent = utcnow() - FILL_TO_POSITION
    pending = session.exec(
        select(Order.account_id, Order.alert_id).where(Order.link_id == link_id)
        .where(col(Order.account_id).in_(account_ids)).where(Order.purpose == "ENTRY")
        .where(Order.alert_id != alert_id).where(col(Order.position_id).is_(None))
        .where(sa.or_(col(Order.status).in_(_WORKING),
                      sa.and_(Order.filled_quantity > 0, col(Order.updated_at) >= recent)))
    ).all()
    for account_id, other in pending:
        if account_id is not None:
            busy.setdefault(account_id, "an entry for this link and account is still on its "
                            f"way to a fill (alert #{other})")
    return busy


def _publish(conn: redis.Redis | None, event: str, position: Position) -> None:
    if conn is None:
        return
    message = {
        "event": event,
        "position_id": position.id,
        "exchange": position.exchange,
        "symboltoken": position.symbol_token,
        "user_id": position.user_id,
    }
    try:
        conn.publish(POSITIONS_CHANNEL, json.dumps(message))
    except redis.RedisError:
        # The monitor also loads open positions from the database when it (re)starts.
        log.warning("could not tell the monitor about position %s", position.id)
    live.publish(
        conn, position.user_id, {"type": "position", "event": event, "position_id": position.id}
    )


# Built once: SQLAlchemy reuses its compiled form (built per call, it cost more than the SQL).
_ORDERS = Order.__table__  # type: ignore[attr-defined]
_INSERT_POSITION = sa.insert(_POSITIONS).returning(_POSITIONS.c.id)
_DELETE_POSITION = sa.delete(_POSITIONS).where(_POSITIONS.c.id == bindparam("pid"))
_CLAIM_ORDER = (
    update(_ORDERS)
    .where(_ORDERS.c.id == bindparam("oid"))
    .where(_ORDERS.c.position_id.is_(None))
    .values(position_id=bindparam("pid"))
)


def open_from_entry(
    order_id: int, tick_size: Decimal, conn: redis.Redis | None, *, session: Session | None = None
) -> Position | None:
    """Open the position of a filled (or partly filled, then finished) entry order, once.

    `session`: join the caller's transaction (the job that just applied the fill); the monitor
    hears of the position only once that commits."""
    with joined(session) as s:
        s.flush()  # the fill this transaction applied, before the fresh read below
        # The job that just applied the fill holds the row locked already: no second read.
        order = locked(s, order_id) or s.get(Order, order_id, with_for_update=True,
                                             populate_existing=True)
        assert order is not None
        if order.position_id is not None or order.filled_quantity <= 0:
            return s.get(Position, order.position_id) if order.position_id else None
        link = s.get(WebhookLink, order.link_id) if order.link_id else None
        rules = exits.ExitRules.from_settings(
            link.stop_loss_pct if link else None,
            link.target_pct if link else None,
            link.trailing_stop_pct if link else None,
        )
        entry = to_rupees(order.average_price_paise)
        assert entry is not None, "a filled order has an average price"
        view = exits.open_position("LONG", entry, order.filled_quantity, rules, tick_size)
        position = Position(
            user_id=order.user_id,
            account_id=order.account_id,
            link_id=order.link_id,
            exchange=order.exchange,
            symbol=order.symbol,
            symbol_token=order.symbol_token,
            side="LONG",
            quantity=order.filled_quantity,
            tick_size_paise=to_paise(tick_size) or 5,
            entry_price_paise=order.average_price_paise or 0,
            initial_stop_paise=to_paise(view.initial_stop),
            stop_paise=to_paise(view.current_stop),
            target_paise=to_paise(view.target),
            trailing_stop_pct=link.trailing_stop_pct if link else None,
            peak_price_paise=to_paise(view.peak_price),
            paper=order.paper,
            # Only with a stop to rest: a link may have a target or trailing stop alone.
            broker_stop=bool(link and link.broker_stop and view.current_stop is not None),
        )
        # A Core insert, not an entity flush (the costliest step of an entry job's tail):
        # the position is handed on (monitor, caller) as this detached object.
        position.id = s.execute(_INSERT_POSITION, position.model_dump(exclude={"id"})).scalar_one()
        # The job and the order-update consumer may both get here for one order; the row
        # lock above does not exist on SQLite, so the order is claimed with a conditional
        # update: whoever finds position_id still empty opens the position, the other
        # takes its insert back (a delete, not a rollback: the caller's transaction may
        # hold more, e.g. the fill) and returns the winner's.
        claimed = s.execute(_CLAIM_ORDER, {"oid": order_id, "pid": position.id})
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            s.execute(_DELETE_POSITION, {"pid": position.id})
            winner = s.get(Order, order_id, populate_existing=True)
            return s.get(Position, winner.position_id) if winner and winner.position_id else None
        set_committed_value(order, "position_id", position.id)
        audit.record(
            s,
            "position.opened",
            user_id=order.user_id,
            subject=str(position.id),
            order=order.client_order_id,
            entry=str(entry),
            quantity=position.quantity,
            stop=str(view.current_stop),
            target=str(view.target),
        )
        after_commit(s, lambda: _publish(conn, "opened", position))
        if position.broker_stop:
            after_commit(s, lambda: _rest_stop_at_broker(conn, position))
    return position


def _rest_stop_at_broker(conn: redis.Redis | None, position: Position) -> None:
    from ats_app.engine.store.queueing import enqueue_broker_stop

    try:
        enqueue_broker_stop(position.id, conn)  # type: ignore[arg-type]
    except redis.RedisError:  # the monitor protects it meanwhile; recovery places it later
        log.error("could not enqueue the stop at broker of position %s", position.id)


def release_exit(position_id: int, reason: str, *, session: Session | None = None) -> None:
    """The exit order failed without a fill: the position is open again and still watched."""
    with joined(session) as s:
        s.flush()
        position = s.get(Position, position_id, populate_existing=True)
        if position is not None and position.status == "EXITING":
            position.status = "OPEN"
            s.add(position)
            audit.record(
                s,
                "position.exit_failed",
                user_id=position.user_id,
                subject=str(position_id),
                reason=reason,
            )


def close_from_exit(
    position_id: int,
    exit_order_id: int,
    reason: str,
    conn: redis.Redis | None,
    *,
    session: Session | None = None,
    exit_price_paise: int | None = None,
) -> Position:
    """Close a position with its filled exit order, once. `session` as in `open_from_entry`.
    `exit_price_paise`: the average over several exit orders (a resting stop that filled in
    part, then the sell of the rest), when not the one order's own."""
    with joined(session) as s:
        s.flush()
        # No lock needed on the read: the conditional update below is what decides, and the
        # job's own session already holds the position from its claim (no second read).
        position = s.get(Position, position_id)
        order = s.get(Order, exit_order_id)
        assert position is not None and order is not None
        if position.status == "CLOSED":
            return position
        exit_paise = exit_price_paise or order.average_price_paise or 0
        values = {
            "status": "CLOSED",
            "exit_price_paise": exit_paise,
            "exit_reason": reason,
            "realized_pnl_paise": (exit_paise - position.entry_price_paise) * position.quantity,
            "closed_at": utcnow(),
        }
        # Conditional, like the claim in open_from_entry: of the job and the order-update
        # consumer closing it at once (no row locks on SQLite), exactly one closes it.
        closed = s.exec(
            update(Position)
            .where(col(Position.id) == position_id)  # type: ignore[call-overload]
            .where(col(Position.status) != "CLOSED")
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if closed.rowcount != 1:
            s.refresh(position)
            return position
        for name, value in values.items():  # what the update wrote, without reading it back
            set_committed_value(position, name, value)
        audit.record(
            s,
            "position.closed",
            user_id=position.user_id,
            subject=str(position_id),
            reason=reason,
            exit=str(to_rupees(exit_paise)),
            pnl=str(to_rupees(position.realized_pnl_paise)),
        )
        after_commit(s, lambda: _closed(conn, position, reason))
    return position


def _closed(conn: redis.Redis | None, position: Position, reason: str) -> None:
    _publish(conn, "closed", position)
    from ats_app.engine.notify import notices  # lazy: only the worker closes positions

    notices.emit(
        position.user_id,
        "position_closed",
        once=f"closed-{position.id}",
        reason=reason,
        symbol=position.symbol,
        exchange=position.exchange,
        quantity=position.quantity,
        paper=position.paper,
        pnl_paise=position.realized_pnl_paise,
        entry_price_paise=position.entry_price_paise,
        exit_price_paise=position.exit_price_paise,
    )


def list_positions(
    session: Session, user_id: int, status: str | None = None, ltp: dict[str, Decimal] | None = None
) -> list[dict[str, object]]:
    """Positions as data (CLI `positions list`, the dashboard). `ltp` maps
    "exchange:token" to the latest price, for the unrealized P&L of open positions."""
    stmt = select(Position).where(Position.user_id == user_id)
    if status:
        stmt = stmt.where(Position.status == status.upper())
    links = dict(
        session.exec(
            select(WebhookLink.id, WebhookLink.name).where(WebhookLink.user_id == user_id)
        ).all()
    )
    out = []
    for p in session.exec(stmt.order_by(col(Position.id).desc())).all():
        last = (ltp or {}).get(f"{p.exchange}:{p.symbol_token}")
        if p.status == "CLOSED":
            pnl: Decimal | None = to_rupees(p.realized_pnl_paise)
        elif last is not None:
            pnl = (last - (to_rupees(p.entry_price_paise) or Decimal(0))) * p.quantity
        else:
            pnl = None
        out.append(
            {
                "id": p.id,
                "link": links.get(p.link_id),
                "tradingsymbol": p.symbol,
                "symboltoken": p.symbol_token,
                "exchange": p.exchange,
                "quantity": p.quantity,
                "entry_price": _money(p.entry_price_paise),
                "peak_price": _money(p.peak_price_paise),
                "stop_price": _money(p.stop_paise),
                "target_price": _money(p.target_paise),
                "status": p.status,
                "exit_reason": p.exit_reason,
                "exit_price": _money(p.exit_price_paise),
                "ltp": None if last is None else str(last),
                "pnl": None if pnl is None else f"{pnl:.2f}",
                "mode": "paper" if p.paper else "live",
                "opened_at": p.opened_at.isoformat(),
                "closed_at": p.closed_at.isoformat() if p.closed_at else None,
            }
        )
    return out


def _money(paise: int | None) -> str | None:
    value = to_rupees(paise)
    return None if value is None else f"{value:.2f}"
