"""Alerts page state: the recent alerts, and one alert's outcome on each of its accounts."""

from __future__ import annotations

from typing import Any

import reflex as rx
from sqlmodel import col, select

from ats_app import routes
from ats_app.engine.core.errors import NotFound
from ats_app.engine.execution import alert_detail
from ats_app.engine.execution.alert_detail import AlertQuery
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import WebhookLink
from ats_app.state.auth import AuthState
from ats_app.state.dates import day_errors, day_or_none

DATE_FIELDS = {"date_from": "From", "date_to": "To"}


def alert_query(form: dict[str, str]) -> AlertQuery:
    """The filter form as a query (dates checked already by `day_errors`); an unknown
    link or status means any."""
    link = form.get("link_id", "")
    status = form.get("status", "")
    return AlertQuery(
        link_id=int(link) if link.isdigit() else None,
        status=status if status in alert_detail.STATUSES else None,
        day_from=day_or_none(form.get("date_from", "")),
        day_to=day_or_none(form.get("date_to", "")),
    )


def accounts_summary(ordered: int, not_traded: int) -> str:
    """'2 ordered · 1 not traded'; empty before any account was reached (queued, ignored)."""
    parts = [f"{ordered} ordered" if ordered else "",
             f"{not_traded} not traded" if not_traded else ""]
    return " · ".join(p for p in parts if p)


def latency(ms: int | None) -> str:
    return "" if ms is None else f"{ms:,} ms"


def alert_row(a: dict[str, Any], *, with_body: bool = False) -> dict[str, str]:
    """An engine alert as the page's strings (Reflex rows are plain string dicts). A refused
    body (up to a few KB) goes only to the detail, not to every row of the list."""
    skip = ("accounts",) if with_body else ("accounts", "body")
    row = {k: "" if v is None else str(v) for k, v in a.items() if k not in skip}
    row["accounts"] = accounts_summary(a.get("ordered", 0), a.get("not_traded", 0))
    row["signal"] = f"{a['action'].upper()} {a['symbol']}".strip()
    if a.get("code"):  # a refusal: its HTTP answer, as TradingView's alert log shows it
        row["reason"] = f"{a['code']} · {row['reason']}"
    row.setdefault("key", row.get("id", ""))
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
    filters: dict[str, str] = {}
    filter_error: str = ""
    link_options: list[list[str]] = []

    def _show(self, uid: int, key: str) -> bool:
        try:
            with session_scope() as s:
                if key.startswith("r") and key[1:].isdigit():
                    found = alert_detail.refused_detail(s, uid, int(key[1:]))
                elif key.isdigit():
                    found = alert_detail.alert_detail(s, uid, int(key))
                else:
                    raise NotFound(key)
        except NotFound:
            self.detail_open, self.detail, self.detail_rows = False, {}, []
            return False
        self.detail = alert_row(found, with_body=True)
        self.detail_rows = [account_row(r) for r in found["accounts"]]
        self.detail_open = True
        return True

    @rx.event
    def load(self):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        self._reload(uid)
        if self.detail_open and self.detail.get("key"):
            self._show(uid, self.detail["key"])  # Refresh: the open detail too
        return None

    def _reload(self, uid: int) -> None:
        with session_scope() as s:
            self.rows = [alert_row(a) for a in
                         alert_detail.list_alerts(s, uid, alert_query(self.filters))]
            self.link_options = [[str(i), n] for i, n in s.exec(
                select(WebhookLink.id, WebhookLink.name).where(WebhookLink.user_id == uid)
                .order_by(col(WebhookLink.name))).all()]

    @rx.event
    def apply_filters(self, form: dict[str, str]):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        form = {k: str(v).strip() for k, v in form.items()}
        # A mistyped date would otherwise mean "any day": the list would look filtered.
        self.filter_error = day_errors(form, DATE_FIELDS)
        if self.filter_error:
            return None
        self.filters = form
        self._reload(uid)
        return None

    @rx.event
    def show(self, key: str):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        if not self._show(uid, key):
            return rx.toast("That alert is not there any more.")
        return None

    @rx.event
    def set_detail_open(self, is_open: bool):
        self.detail_open = is_open
