"""All simulator state in one object, plus the background engine loop that drives it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from datetime import date
from typing import Any

from ats_app.simulator.accounts import Account, Sessions
from ats_app.simulator.clock import Clock
from ats_app.simulator.config import SimConfig
from ats_app.simulator.faults import FaultStore
from ats_app.simulator.latency import Pacer
from ats_app.simulator.market import Market
from ats_app.simulator.orders import OrderBook
from ats_app.simulator.positions import Positions
from ats_app.simulator.ratelimit import SlidingWindowLimiter
from ats_app.simulator.scripmaster import ScripMaster, build_instruments


class SimState:
    def __init__(self, config: SimConfig, start: date | None = None) -> None:
        self.config = config
        self.clock = Clock()
        self.master = ScripMaster(build_instruments(start or self.clock.now().date(),
                                                    config.strikes_each_side))
        self.market = Market(self.master, self.clock, config.seed,
                             config.engine_interval_ms / 1000.0)
        self.accounts: dict[str, Account] = {
            s.client_code: Account.from_spec(s) for s in config.effective_accounts()}
        self.sessions = Sessions(config.jwt_ttl_s, config.refresh_ttl_s)
        self.positions = Positions(self.accounts, self._spot)
        self.pacer = Pacer(config.latency, config.seed)
        self.orders = OrderBook(self.market, self.clock, self.positions, config.nse_hours,
                                self._order_event, fill_delay=self.pacer.fill_delay)
        self.faults = FaultStore()
        self.limiters = {
            "order": SlidingWindowLimiter(config.order_limits),
            "login": SlidingWindowLimiter(config.login_limits),
            "book": SlidingWindowLimiter(config.book_limits),
            "ltp": SlidingWindowLimiter(config.ltp_limits),
            "quote": SlidingWindowLimiter(config.quote_limits),
        }
        # Order-update subscribers and market-feed connections, per client code.
        self.order_listeners: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self.feed_conns: dict[str, set[Any]] = defaultdict(set)
        self.order_conns: dict[str, set[Any]] = defaultdict(set)
        self.calls: Counter[str] = Counter()  # SmartAPI requests per route, as /sim/health shows
        self._task: asyncio.Task[None] | None = None

    def _spot(self, token: str) -> float:
        q = self.market.quote(token)
        return q.ltp / 100.0 if q else 0.0

    def _order_event(self, client: str, row: dict[str, Any], code: str) -> None:
        msg = {"user-id": client, "status-code": "200", "order-status": code,
               "error-message": "", "orderData": dict(row, clientcode=client)}
        for queue in list(self.order_listeners.get(client, ())):
            queue.put_nowait(msg)

    def allow(self, limiter: str, key: str) -> bool:
        return self.limiters[limiter].allow(key, time.monotonic())

    # --- engine loop -------------------------------------------------------------------------
    def tick(self) -> None:
        self.market.step()
        self.orders.process()
        self.positions.mark(lambda tok: self._spot(tok) or None)

    async def run(self) -> None:
        interval = self.config.engine_interval_ms / 1000.0
        while True:
            started = time.monotonic()
            self.tick()
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for conns in (*self.feed_conns.values(), *self.order_conns.values()):
            for conn in list(conns):
                await conn.drop()
