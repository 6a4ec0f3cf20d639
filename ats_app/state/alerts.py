"""Alerts page state: the recent alerts, and one alert's outcome on each of its accounts."""

from __future__ import annotations

from typing import Any

import reflex as rx

from ats_app import routes
from ats_app.engine.core.errors import NotFound
from ats_app.engine.execution import alert_detail
from ats_app.engine.store.db import session_scope
from ats_app.state.auth import AuthState


def accounts_summary(ordered: int, not_traded: int) -> str:
    """'2 ordered · 1 not traded'; empty before any account was reached (queued, ignored)."""
    parts = [f"{ordered} ordered" if ordered else "",
             f"{not_traded} not traded" if not_traded else ""]
    return " · ".join(p for p in parts if p)


def latency(ms: int | None) -> str:
    return "" if ms is None else f"{ms:,} ms"


def alert_row(a: dict[str, Any]) -> dict[str, str]:
    """An engine alert as the page's strings (Reflex rows are plain string dicts)."""
    row = {k: "" if v is None else str(v) for k, v in a.items() if k != "accounts"}
    row["accounts"] = accounts_summary(a["ordered"], a["not_traded"])
    row["signal"] = f"{a['action'].upper()} {a['symbol']}".strip()
    return row


def account_row(r: dict[str, Any]) -> dict[str, str]:
    row = {k: "" if v is None else str(v) for k, v in r.items()}
    # "filled of ordered" only where there is an order: a refused account has neither.
    row["filled"] = f"{r['filled_quantity']} of {r['quantity']}" if r["ordertag"] else ""
    row["created_after"] = latency(r["created_ms"])
    row["updated_after"] = latency(r["updated_ms"])
    return row


class AlertsState(AuthState):
    rows: list[dict[str, str]] = []
    detail: dict[str, str] = {}
    detail_rows: list[dict[str, str]] = []
    detail_open: bool = False

    def _show(self, uid: int, alert_id: int) -> bool:
        try:
            with session_scope() as s:
                found = alert_detail.alert_detail(s, uid, alert_id)
        except NotFound:
            self.detail_open, self.detail, self.detail_rows = False, {}, []
            return False
        self.detail = alert_row(found)
        self.detail_rows = [account_row(r) for r in found["accounts"]]
        self.detail_open = True
        return True

    @rx.event
    def load(self):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        with session_scope() as s:
            self.rows = [alert_row(a) for a in alert_detail.recent_alerts(s, uid)]
        if self.detail_open and self.detail.get("id", "").isdigit():
            self._show(uid, int(self.detail["id"]))  # Refresh: the open detail too
        return None

    @rx.event
    def show(self, alert_id: str):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        if not alert_id.isdigit() or not self._show(uid, int(alert_id)):
            return rx.toast("That alert is not there any more.")
        return None

    @rx.event
    def set_detail_open(self, is_open: bool):
        self.detail_open = is_open
