"""Order rows as the user sees them, and their export (CSV / JSON)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass

from sqlmodel import Session, select

from ats_app.engine.models import Order

EXPORT_FORMATS = ("csv", "json")


@dataclass(frozen=True)
class OrderView:
    id: int
    created_at: str
    client_order_id: str
    broker_order_id: str | None
    account_id: int | None
    exchange: str
    symbol: str
    side: str
    order_type: str
    quantity: int
    filled_quantity: int
    price: str | None
    average_price: str | None
    status: str
    reason: str | None
    paper: bool


def paise_to_rupees(paise: int | None) -> str | None:
    """Exact rupee string (2 decimals) from integer paise."""
    if paise is None:
        return None
    sign = "-" if paise < 0 else ""
    rupees, p = divmod(abs(paise), 100)
    return f"{sign}{rupees}.{p:02d}"


def _view(o: Order) -> OrderView:
    assert o.id is not None
    return OrderView(
        id=o.id, created_at=o.created_at.isoformat(), client_order_id=o.client_order_id,
        broker_order_id=o.broker_order_id, account_id=o.account_id, exchange=o.exchange,
        symbol=o.symbol, side=o.side, order_type=o.order_type, quantity=o.quantity,
        filled_quantity=o.filled_quantity, price=paise_to_rupees(o.price_paise),
        average_price=paise_to_rupees(o.average_price_paise), status=o.status, reason=o.reason,
        paper=o.paper,
    )


def list_orders(session: Session, user_id: int, limit: int | None = None) -> list[OrderView]:
    stmt = select(Order).where(Order.user_id == user_id).order_by(Order.id.desc())  # type: ignore[union-attr]
    if limit:
        stmt = stmt.limit(limit)
    return [_view(o) for o in session.exec(stmt).all()]


def export_orders(orders: list[OrderView], fmt: str) -> str:
    """Render orders as CSV (header row first) or a JSON array."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {EXPORT_FORMATS}")
    rows = [asdict(o) for o in orders]
    if fmt == "json":
        return json.dumps(rows, indent=2)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(OrderView.__dataclass_fields__))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
