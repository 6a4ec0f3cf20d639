"""Overview page state: bot on/off, mode, services, today's P&L, live open positions.

Live P&L arrives from the monitor through Redis pub/sub into this state (a background
event), so the page updates by itself without polling the database.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
import reflex as rx

from ats_app import routes
from ats_app.engine.core.config import settings
from ats_app.engine.execution import halt
from ats_app.engine.risk import bot
from ats_app.engine.services import health
from ats_app.engine.store import live
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.queueing import connection
from ats_app.engine.store.redis_conn import redis_url
from ats_app.state.auth import AuthState
from ats_app.state.positions import position_rows


def _dec(text: str) -> Decimal:
    try:
        return Decimal(text) if text else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


IST = ZoneInfo("Asia/Kolkata")


def day_pnl(rows: list[dict[str, str]], day: date) -> tuple[Decimal, list[dict[str, str]]]:
    """Realized P&L of positions closed on `day` (IST) and its running total by close time,
    for the day's chart."""
    closed = []
    for r in rows:
        if r.get("status") != "CLOSED" or not r.get("closed_at"):
            continue
        at = datetime.fromisoformat(r["closed_at"]).astimezone(IST)
        if at.date() == day:
            closed.append((at, _dec(r.get("pnl", ""))))
    total, points = Decimal(0), [{"time": "start", "pnl": "0.00"}] if closed else []
    for at, pnl in sorted(closed):
        total += pnl
        points.append({"time": at.strftime("%H:%M:%S"), "pnl": f"{total:.2f}"})
    return total, points


class OverviewState(AuthState):
    bot_running: bool = False
    trading_mode: str = "paper"
    market_hours: str = "nse"
    services: dict[str, str] = {}
    open_rows: list[dict[str, str]] = []
    pnl_points: list[dict[str, str]] = []
    realized_today: str = "0.00"
    streaming: bool = False
    halted: bool = False
    feed: str = "off"
    stale: list[str] = []
    confirm_kill: bool = False
    kill_result: str = ""
    _uid: int = 0

    @rx.var
    def unrealized(self) -> str:
        return f"{sum(_dec(r.get('pnl', '')) for r in self.open_rows):.2f}"

    def _refresh(self, uid: int) -> None:
        rows = position_rows(uid)
        self.open_rows = [r for r in rows if r["status"] in ("OPEN", "EXITING")]
        realized, self.pnl_points = day_pnl(rows, datetime.now(IST).date())
        self.realized_today = f"{realized:.2f}"

    @rx.event
    def load(self):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        self._uid = uid
        cfg = settings()
        self.trading_mode, self.market_hours = cfg.trading_mode, cfg.market_hours
        with session_scope() as s:
            self.bot_running = bot.is_running(s, uid)
        self.halted = halt.halted(uid)
        self.services = {k: ("up" if v else "down") for k, v in health.check().items()}
        try:
            conn = connection()
            self.feed, self.stale = health.feed_state(conn), health.stale_instruments(conn)
        except Exception:
            self.feed, self.stale = "off", []
        self._refresh(uid)
        return OverviewState.stream_live

    @rx.event
    def set_bot(self, running: bool):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        with session_scope() as s:
            self.bot_running = bot.set_running(s, uid, running)
        self.halted = halt.halted(uid)
        return None

    @rx.event
    def ask_kill(self):
        self.confirm_kill = True

    @rx.event
    def cancel_kill(self):
        self.confirm_kill = False

    @rx.event(background=True)
    async def kill(self):
        """Stop the bot, cancel open entry orders, exit every position at market."""
        async with self:
            self.confirm_kill = False
            uid = self._user_id()
            if uid is None:
                return
            self.kill_result = "Kill switch engaged: cancelling orders and exiting positions…"
        report = await asyncio.to_thread(halt.kill, uid)
        async with self:
            self.halted, self.bot_running = True, False
            self.kill_result = (
                f"Kill switch done: {len(report.cancelled)} order(s) cancelled, "
                f"{len(report.exits_enqueued)} position(s) being exited."
            )
            if report.still_in_flight:
                self.kill_result += f" Still in flight: {', '.join(report.still_in_flight)}."
            await asyncio.to_thread(self._refresh, uid)

    @rx.event(background=True)
    async def stream_live(self):
        async with self:
            if self.streaming or not self._uid:
                return
            self.streaming = True
            uid = self._uid
        conn = aioredis.from_url(redis_url())
        pubsub = conn.pubsub()
        await pubsub.subscribe(live.channel(uid))
        try:
            while True:
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is None:
                    continue
                data = json.loads(msg["data"])
                async with self:
                    if data.get("type") == "pnl":
                        self._apply_pnl(data)
                    else:
                        await asyncio.to_thread(self._refresh, uid)
        finally:
            await pubsub.aclose()
            await conn.aclose()
            async with self:
                self.streaming = False

    def _apply_pnl(self, data: dict) -> None:
        pid = str(data.get("position_id"))
        rows = []
        for r in self.open_rows:
            if r["id"] == pid:
                r = {
                    **r,
                    "ltp": str(data.get("ltp", r["ltp"])),
                    "pnl": str(data.get("pnl", r["pnl"])),
                    "stop_price": str(data.get("stop", r["stop_price"])),
                    "peak_price": str(data.get("peak", r["peak_price"])),
                }
            rows.append(r)
        self.open_rows = rows
