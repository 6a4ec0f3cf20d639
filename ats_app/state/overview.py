"""Overview page state: bot on/off, trading mode, service health."""

from __future__ import annotations

import reflex as rx

from ats_app import routes
from ats_app.engine import bot, health
from ats_app.engine.config import settings
from ats_app.engine.db import session_scope
from ats_app.state.auth import AuthState


class OverviewState(AuthState):
    bot_running: bool = False
    trading_mode: str = "paper"
    market_hours: str = "nse"
    services: dict[str, str] = {}

    @rx.event
    def load(self):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        cfg = settings()
        self.trading_mode = cfg.trading_mode
        self.market_hours = cfg.market_hours
        with session_scope() as s:
            self.bot_running = bot.is_running(s, uid)
        self.services = {k: ("up" if v else "down") for k, v in health.check().items()}
        return None

    @rx.event
    def set_bot(self, running: bool):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        with session_scope() as s:
            self.bot_running = bot.set_running(s, uid, running)
        return None
