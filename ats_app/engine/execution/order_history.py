"""Orders as the user sees them: filtered queries, paging, export (CSV / JSON), bulk delete."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete as sa_delete
from sqlalchemy import func
from sqlmodel import Session, col, select

from ats_app.engine.store import audit
from ats_app.engine.store.models import BrokerAccount, Order, Strategy, WebhookLink

EXPORT_FORMATS = ("csv", "json")
IST = ZoneInfo("Asia/Kolkata")


@dataclass(frozen=True)
class OrderFilter:
    """Filters as the Orders page and the CLI give them; dates are IST calendar days."""

    date_from: date | None = None
    date_to: date | None = None
    strategy_id: int | None = None
    account_id: int | None = None
    status: str | None = None
    symbol: str | None = None


@dataclass(frozen=True)
class OrderView:
    id: int
    alert_id: int | None
    created_at: str  # ISO 8601, UTC
    account: str | None
    strategy: str | None
    link: str | None
    tradingsymbol: str
    symboltoken: str
    exchange: str
    side: str
    quantity: int
    filled_quantity: int
    status: str
    mode: str  # paper / live
    requested_price: str | None
    fill_price: str | None
    slippage: str | None  # fill - requested, in the order's adverse direction (rupees)
    broker_order_id: str | None
    client_order_id: str
    reason: str | None


def paise_to_rupees(paise: int | None) -> str | None:
    """Exact rupee string (2 decimals) from integer paise."""
    if paise is None:
        return None
    sign = "-" if paise < 0 else ""
    rupees, p = divmod(abs(paise), 100)
    return f"{sign}{rupees}.{p:02d}"


def _slippage(o: Order) -> str | None:
    if o.price_paise is None or o.average_price_paise is None:
        return None
    diff = o.average_price_paise - o.price_paise
    return paise_to_rupees(diff if o.side == "BUY" else -diff)


def _where(stmt, user_id: int, f: OrderFilter):
    stmt = stmt.where(Order.user_id == user_id)
    if f.date_from:
        stmt = stmt.where(col(Order.created_at) >= datetime.combine(f.date_from, time(), IST))
    if f.date_to:
        end = datetime.combine(f.date_to + timedelta(days=1), time(), IST)
        stmt = stmt.where(col(Order.created_at) < end)
    if f.account_id:
        stmt = stmt.where(Order.account_id == f.account_id)
    if f.status:
        stmt = stmt.where(Order.status == f.status.upper())
    if f.symbol:
        stmt = stmt.where(col(Order.symbol).contains(f.symbol.strip().upper()))
    if f.strategy_id:
        links = select(WebhookLink.id).where(WebhookLink.strategy_id == f.strategy_id)
        stmt = stmt.where(col(Order.link_id).in_(links))
    return stmt


def count_orders(session: Session, user_id: int, f: OrderFilter = OrderFilter()) -> int:
    return int(session.exec(_where(select(func.count()).select_from(Order), user_id, f)).one())


def list_orders(
    session: Session,
    user_id: int,
    f: OrderFilter = OrderFilter(),
    offset: int = 0,
    limit: int | None = None,
) -> list[OrderView]:
    stmt = _where(select(Order), user_id, f).order_by(col(Order.id).desc()).offset(offset)
    if limit:
        stmt = stmt.limit(limit)
    rows = session.exec(stmt).all()
    accounts = _names(session, BrokerAccount, BrokerAccount.label, user_id)
    links = {
        lk.id: lk
        for lk in session.exec(select(WebhookLink).where(WebhookLink.user_id == user_id)).all()
    }
    strategies = _names(session, Strategy, Strategy.name, user_id)
    return [_view(o, accounts, links, strategies) for o in rows]


def _names(session: Session, model, name_col, user_id: int) -> dict[int, str]:
    return dict(session.exec(select(model.id, name_col).where(model.user_id == user_id)).all())


def _view(
    o: Order,
    accounts: dict[int, str],
    links: dict[int | None, WebhookLink],
    strategies: dict[int, str],
) -> OrderView:
    assert o.id is not None
    link = links.get(o.link_id)
    return OrderView(
        id=o.id,
        alert_id=o.alert_id,
        created_at=o.created_at.isoformat(),
        account=accounts.get(o.account_id) if o.account_id else None,
        strategy=strategies.get(link.strategy_id) if link and link.strategy_id else None,
        link=link.name if link else None,
        tradingsymbol=o.symbol,
        symboltoken=o.symbol_token,
        exchange=o.exchange,
        side=o.side,
        quantity=o.quantity,
        filled_quantity=o.filled_quantity,
        status=o.status,
        mode="paper" if o.paper else "live",
        requested_price=paise_to_rupees(o.price_paise),
        fill_price=paise_to_rupees(o.average_price_paise),
        slippage=_slippage(o),
        broker_order_id=o.broker_order_id,
        client_order_id=o.client_order_id,
        reason=o.reason,
    )


def render(orders: Iterable[OrderView], fmt: str) -> Iterator[str]:
    """Orders as CSV (header first) or a JSON array, piece by piece: the same columns."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {EXPORT_FORMATS}")
    names = [f.name for f in fields(OrderView)]
    if fmt == "json":
        yield "["
        for i, o in enumerate(orders):
            yield ("," if i else "") + "\n" + json.dumps(asdict(o))
        yield "\n]\n"
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=names)
    writer.writeheader()
    for o in orders:
        writer.writerow(asdict(o))
        if buf.tell() > 64_000:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def export_orders(orders: list[OrderView], fmt: str) -> str:
    return "".join(render(orders, fmt))


def iter_orders(user_id: int, f: OrderFilter, page: int = 500) -> Iterator[OrderView]:
    """Every order matching `f`, read a page at a time (a short session each), so an export
    of many thousands streams instead of building one huge list."""
    from ats_app.engine.store.db import session_scope

    offset = 0
    while True:
        with session_scope() as s:
            batch = list_orders(s, user_id, f, offset=offset, limit=page)
        yield from batch
        if len(batch) < page:
            return
        offset += page


def delete_orders(
    session: Session, user_id: int, ids: list[int] | None = None, f: OrderFilter | None = None
) -> int:
    """Delete the user's orders by id, or all matching a filter. Returns how many."""
    if ids is None and f is None:
        raise ValueError("give ids or a filter")
    if ids is not None:
        stmt = sa_delete(Order).where(col(Order.user_id) == user_id).where(col(Order.id).in_(ids))
    else:
        assert f is not None
        stmt = sa_delete(Order).where(col(Order.id).in_(_where(select(Order.id), user_id, f)))
    result = session.exec(stmt)  # type: ignore[call-overload]
    audit.record(
        session,
        "orders.deleted",
        user_id=user_id,
        count=result.rowcount,
        ids=ids,
        filter=asdict(f) if f else None,
    )
    return int(result.rowcount)
