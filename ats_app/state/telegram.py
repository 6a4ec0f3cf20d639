"""Profile page's Telegram card: bind the trader's own chat with a one-time code."""

from __future__ import annotations

import reflex as rx

from ats_app import routes
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.queueing import connection
from ats_app.engine.telegram import binding
from ats_app.state.auth import AuthState


class TelegramState(AuthState):
    tg_enabled: bool = False
    tg_linked: str = ""  # "@asha_k since 2026-12-07 10:02:05 IST", or "" when not linked
    tg_code: str = ""
    tg_error: str = ""

    def _reload(self, uid: int) -> None:
        self.tg_enabled = binding.telegram_config().enabled
        with session_scope() as s:
            view = binding.binding_view(s, uid)
        self.tg_linked = "" if view is None else (
            (f"@{view['username']} " if view["username"] else "a chat ")
            + f"since {view['bound_ist']}")

    @rx.event
    def load_telegram(self):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        self.tg_code, self.tg_error = "", ""
        self._reload(uid)
        return None

    @rx.event
    def new_telegram_code(self):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        self._reload(uid)
        if not self.tg_enabled:
            self.tg_error = "Telegram control is off: the operator has not set TELEGRAM_BOT_TOKEN."
            return None
        self.tg_code, self.tg_error = binding.new_code(connection(), uid), ""
        return None

    @rx.event
    def unlink_telegram(self):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        with session_scope() as s:
            binding.unbind(s, uid)
        self.tg_code = ""
        self._reload(uid)
        return rx.toast("Telegram chat unlinked: it controls nothing any more.")
