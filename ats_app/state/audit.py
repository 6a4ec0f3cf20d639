"""Audit page state."""

from __future__ import annotations

import reflex as rx

from ats_app import routes
from ats_app.engine.store import audit_log
from ats_app.engine.store.db import session_scope
from ats_app.state.auth import AuthState
from ats_app.state.dates import day_errors, day_or_none


class AuditState(AuthState):
    rows: list[dict[str, str]] = []
    filters: dict[str, str] = {}
    filter_error: str = ""

    def _query(self, uid: int, limit: int = 200) -> list[dict[str, str]]:
        f = self.filters
        day = day_or_none(f.get("day", ""))
        with session_scope() as s:
            return audit_log.list_events(
                s,
                uid,
                category=f.get("category") or None,
                text=f.get("text") or None,
                day=day,
                limit=limit,
            )

    @rx.event
    def load(self):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        self.rows = self._query(uid)
        return None

    @rx.event
    def apply_filters(self, form: dict[str, str]):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        form = {k: str(v).strip() for k, v in form.items()}
        # A mistyped day would otherwise mean "any day": the list would look filtered.
        self.filter_error = day_errors(form, {"day": "Day"})
        if self.filter_error:
            return None
        self.filters = form
        self.rows = self._query(uid)
        return None

    @rx.event
    def download(self, fmt: str):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        rows = self._query(uid, limit=100_000)
        return rx.download(data=audit_log.export_events(rows, fmt), filename=f"audit.{fmt}")
