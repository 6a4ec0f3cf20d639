"""The day's summary after the close, one notification per user who traded that day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from sqlmodel import col, select

from ats_app.engine.broker import charges
from ats_app.engine.broker.base import Contract, Product, Side
from ats_app.engine.core.money import to_rupees
from ats_app.engine.market.hours import IST
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Order, Position

SUMMARY_AT = time(15, 45)  # IST, after the close and the square-off


@dataclass(frozen=True)
class DaySummary:
    trades: int  # filled orders
    realized_pnl: Decimal  # positions closed that day
    charges: Decimal  # estimated, per filled order
    failures: int  # orders rejected or failed
    paper: bool  # every filled order was paper


def order_charges(order: Order) -> Decimal:
    price = to_rupees(order.average_price_paise) or Decimal(0)
    contract = Contract(order.exchange, order.symbol, order.symbol_token, 1, Decimal("0.05"))
    segment = charges.segment_for(contract, Product(order.product))
    return charges.estimate(segment, Side(order.side), price, order.filled_quantity).total


def summarize(orders: list[Order], closed: list[Position]) -> DaySummary:
    """Pure: the figures of one user's day from its orders and closed positions."""
    filled = [o for o in orders if o.status == "FILLED"]
    return DaySummary(
        trades=len(filled),
        realized_pnl=sum(
            (to_rupees(p.realized_pnl_paise) or Decimal(0) for p in closed), Decimal(0)
        ),
        charges=sum((order_charges(o) for o in filled), Decimal(0)).quantize(Decimal("0.01")),
        failures=sum(1 for o in orders if o.status in ("REJECTED", "FAILED")),
        paper=all(o.paper for o in filled),
    )


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), IST)
    return start, start + timedelta(days=1)


def summaries(day: date) -> dict[int, DaySummary]:
    """Every user with orders or closed positions on `day` (IST)."""
    start, end = day_bounds(day)
    with session_scope() as s:
        orders = s.exec(
            select(Order).where(col(Order.created_at) >= start).where(col(Order.created_at) < end)
        ).all()
        closed = s.exec(
            select(Position)
            .where(col(Position.closed_at) >= start)
            .where(col(Position.closed_at) < end)
        ).all()
    users = {o.user_id for o in orders} | {p.user_id for p in closed}
    return {
        uid: summarize(
            [o for o in orders if o.user_id == uid], [p for p in closed if p.user_id == uid]
        )
        for uid in sorted(users)
    }
