"""How a link, strategy or account really did: closed positions, their charges and the
figures of `metrics`, paper and live apart. Every query is scoped to the user."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from ats_app.engine.core.clock import IST, ist
from ats_app.engine.core.errors import NotFound, ValidationError
from ats_app.engine.core.money import to_rupees
from ats_app.engine.reports.metrics import ClosedTrade, daily_pnl, equity_curve, summarize
from ats_app.engine.risk.daily_summary import order_charges
from ats_app.engine.store.models import BrokerAccount, Order, Position, Strategy, WebhookLink

__all__ = ["build_report", "closed_trades"]

ZERO = Decimal(0)


def _owned(session: Session, model: type, user_id: int, row_id: int, what: str) -> None:
    row = session.get(model, row_id)
    if row is None or row.user_id != user_id:
        raise NotFound(f"{what} {row_id} not found")


def _positions(session: Session, user_id: int, link_id: int | None, strategy_id: int | None,
               account_id: int | None, start: date | None, end: date | None) -> list[Position]:
    stmt = (select(Position).where(Position.user_id == user_id, Position.status == "CLOSED")
            .where(col(Position.closed_at).is_not(None)))
    if link_id is not None:
        _owned(session, WebhookLink, user_id, link_id, "webhook link")
        stmt = stmt.where(Position.link_id == link_id)
    if strategy_id is not None:
        _owned(session, Strategy, user_id, strategy_id, "strategy")
        links = select(WebhookLink.id).where(WebhookLink.user_id == user_id,
                                             WebhookLink.strategy_id == strategy_id)
        stmt = stmt.where(col(Position.link_id).in_(links))
    if account_id is not None:
        _owned(session, BrokerAccount, user_id, account_id, "broker account")
        stmt = stmt.where(Position.account_id == account_id)
    if start is not None:
        stmt = stmt.where(col(Position.closed_at) >= datetime.combine(start, time(), IST))
    if end is not None:
        stmt = stmt.where(col(Position.closed_at)
                          < datetime.combine(end + timedelta(days=1), time(), IST))
    return list(session.exec(stmt.order_by(col(Position.closed_at), col(Position.id))).all())


def _charges(session: Session, user_id: int, ids: Sequence[int]) -> dict[int, Decimal]:
    """Estimated charges per position, from its filled orders (entry and exit)."""
    out: dict[int, Decimal] = {}
    for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
        orders = session.exec(
            select(Order).where(Order.user_id == user_id, col(Order.position_id).in_(chunk))
            .where(col(Order.filled_quantity) > 0)
        ).all()
        for o in orders:
            assert o.position_id is not None
            out[o.position_id] = out.get(o.position_id, ZERO) + order_charges(o)
    return out


def closed_trades(session: Session, positions: Sequence[Position],
                  user_id: int) -> list[ClosedTrade]:
    charges = _charges(session, user_id, [p.id for p in positions if p.id is not None])
    return [ClosedTrade(p.closed_at, to_rupees(p.realized_pnl_paise) or ZERO,
                        charges.get(p.id or 0, ZERO), p.exit_reason or "unknown")
            for p in positions if p.closed_at is not None]


def _money(v: Decimal | None) -> float | None:
    return None if v is None else float(v)


def _section(trades: Sequence[ClosedTrade]) -> dict[str, Any]:
    m = summarize(trades)
    return {
        "trades": m.trades, "wins": m.wins, "losses": m.losses,
        "win_rate": _money(m.win_rate), "avg_win": _money(m.avg_win),
        "avg_loss": _money(m.avg_loss), "profit_factor": _money(m.profit_factor),
        "expectancy": _money(m.expectancy), "max_drawdown": float(m.max_drawdown),
        "charges": float(m.charges), "gross_pnl": float(m.gross_pnl),
        "net_pnl": float(m.net_pnl), "exit_reasons": m.exit_reasons,
        "equity": [{"time": ist(t).isoformat(), "equity": float(v)}
                   for t, v in equity_curve(trades)],
        "daily": [{"day": d.isoformat(), "net_pnl": float(v)} for d, v in daily_pnl(trades)],
    }


def build_report(session: Session, user_id: int, *, link_id: int | None = None,
                 strategy_id: int | None = None, account_id: int | None = None,
                 start: date | None = None, end: date | None = None) -> dict[str, Any]:
    """`report --json`: the scope's figures for paper and for live, and one row per link."""
    if start is not None and end is not None and end < start:
        raise ValidationError("--to is before --from", "to")
    positions = _positions(session, user_id, link_id, strategy_id, account_id, start, end)
    trades = closed_trades(session, positions, user_id)
    names = dict(session.exec(select(WebhookLink.id, WebhookLink.name)
                              .where(WebhookLink.user_id == user_id)).all())
    by_link: dict[tuple[int | None, bool], list[ClosedTrade]] = {}
    for p, t in zip(positions, trades, strict=True):
        by_link.setdefault((p.link_id, p.paper), []).append(t)
    rows = []
    for (lid, paper), ts in sorted(by_link.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1])):
        m = summarize(ts)
        rows.append({"link_id": lid, "link": names.get(lid, "(deleted link)") if lid else "-",
                     "mode": "paper" if paper else "live", "trades": m.trades,
                     "win_rate": _money(m.win_rate), "net_pnl": float(m.net_pnl),
                     "charges": float(m.charges), "max_drawdown": float(m.max_drawdown)})
    return {
        "scope": {"link": link_id, "strategy": strategy_id, "account": account_id,
                  "from": start.isoformat() if start else None,
                  "to": end.isoformat() if end else None},
        "paper": _section([t for p, t in zip(positions, trades, strict=True) if p.paper]),
        "live": _section([t for p, t in zip(positions, trades, strict=True) if not p.paper]),
        "links": rows,
    }
