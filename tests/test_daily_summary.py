"""The day's summary: right figures, one notification per user who traded, sent once."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import redis
from rq import Queue

from ats_app.engine.market.hours import IST
from ats_app.engine.notify import targets
from ats_app.engine.risk.daily_summary import summarize
from ats_app.engine.risk.schedules import run_daily_summary
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Order, Position
from ats_app.engine.store.redis_conn import NOTIFY_QUEUE
from ats_app.engine.tenants import users

DAY = date(2026, 11, 25)
NOON = datetime(2026, 11, 25, 12, 0, tzinfo=IST)


def _order(uid: int, cid: str, status: str, side: str = "BUY", price: int = 10000) -> Order:
    return Order(
        user_id=uid,
        client_order_id=cid,
        exchange="NFO",
        symbol="NIFTY26DEC26000CE",
        symbol_token="1",
        side=side,
        quantity=65,
        filled_quantity=65 if status == "FILLED" else 0,
        average_price_paise=price,
        status=status,
        paper=True,
        created_at=NOON,
        updated_at=NOON,
    )


def test_summarize_counts_trades_pnl_charges_failures() -> None:
    orders = [
        _order(1, "a", "FILLED"),
        _order(1, "b", "FILLED", "SELL", 12000),
        _order(1, "c", "REJECTED"),
    ]
    closed = [
        Position(
            user_id=1,
            exchange="NFO",
            symbol="X",
            symbol_token="1",
            quantity=65,
            entry_price_paise=10000,
            realized_pnl_paise=130000,
            status="CLOSED",
        )
    ]
    s = summarize(orders, closed)
    assert (s.trades, s.failures, s.paper) == (2, 1, True)
    assert s.realized_pnl == Decimal("1300")
    assert Decimal("20") < s.charges < Decimal("100")  # 2 orders: ₹20 brokerage each + taxes


def test_run_daily_summary_notifies_each_trader_once(database_url: str, redis_url: str) -> None:
    with session_scope() as s:
        trader = users.create_user(s, "trader", "password123", "T", "R").id
        idle = users.create_user(s, "idle", "password123", "I", "D").id
        for uid in (trader, idle):
            targets.add_target(s, uid, "json://127.0.0.1:9/hook")
        s.add(_order(trader, "A1E0", "FILLED"))
    first = run_daily_summary(DAY.isoformat(), "15:45")
    again = run_daily_summary(DAY.isoformat(), "15:45")
    assert first["users"] == [trader] and again["status"] == "already ran"
    jobs = Queue(NOTIFY_QUEUE, connection=redis.Redis.from_url(redis_url)).jobs
    assert len(jobs) == 1 and jobs[0].args[0] == trader and jobs[0].args[1] == "daily_summary"
    assert "Trades: 1" in jobs[0].args[3]
