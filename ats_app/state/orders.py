"""Orders page state: filters, paging, download of exactly what the filters show, bulk delete."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

import reflex as rx
from reflex.config import get_config

from ats_app import routes
from ats_app.engine.core.clock import ist_stamp
from ats_app.engine.execution import order_history as orders
from ats_app.engine.store import downloads
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.queueing import connection
from ats_app.engine.tenants import accounts, strategies
from ats_app.state.auth import AuthState
from ats_app.state.dates import day_errors, day_or_none

PAGE_SIZE = 50


DATE_FIELDS = {"date_from": "From", "date_to": "To"}


def order_filter(form: dict[str, str]) -> orders.OrderFilter:
    """The filter form's strings as an OrderFilter; unparseable values mean "any"."""
    return orders.OrderFilter(
        date_from=day_or_none(form.get("date_from", "")),
        date_to=day_or_none(form.get("date_to", "")),
        strategy_id=int(form["strategy_id"]) if form.get("strategy_id", "").isdigit() else None,
        account_id=int(form["account_id"]) if form.get("account_id", "").isdigit() else None,
        status=form.get("status") or None,
        symbol=form.get("symbol") or None,
    )


def page_label(page: int, total: int, size: int = PAGE_SIZE) -> str:
    if total == 0:
        return "No orders"
    return f"{page * size + 1}–{min(total, (page + 1) * size)} of {total}"


def clamp_page(page: int, total: int, size: int = PAGE_SIZE) -> int:
    return min(max(0, page), max(0, (total - 1) // size))


def delete_label(selected: int, total: int) -> str:
    """Names how many rows a bulk delete removes: the ticked ones, else all filtered."""
    n = selected or total
    which = "selected" if selected else "matching the filters"
    return f"Delete {n} order{'s' if n != 1 else ''} {which}? This cannot be undone."


def order_row(v: orders.OrderView) -> dict[str, str]:
    """An order as the page's strings; `created_ist` is its time as every screen shows one."""
    row = {k: "" if val is None else str(val) for k, val in asdict(v).items()}
    row["created_ist"] = ist_stamp(datetime.fromisoformat(v.created_at))
    return row


class OrdersState(AuthState):
    rows: list[dict[str, str]] = []
    total: int = 0
    page: int = 0
    filters: dict[str, str] = {}
    strategy_options: list[list[str]] = []
    account_options: list[list[str]] = []
    selected: list[str] = []
    confirm_delete: bool = False
    filter_error: str = ""

    def _filter(self) -> orders.OrderFilter:
        return order_filter(self.filters)

    def _reload(self, uid: int) -> None:
        f = self._filter()
        with session_scope() as s:
            self.total = orders.count_orders(s, uid, f)
            self.rows = [
                order_row(v)
                for v in orders.list_orders(
                    s, uid, f, offset=self.page * PAGE_SIZE, limit=PAGE_SIZE
                )
            ]
            self.strategy_options = [
                [str(x.id), x.name] for x in strategies.list_strategies(s, uid)
            ]
            self.account_options = [[str(a.id), a.label] for a in accounts.list_accounts(s, uid)]

    @rx.var
    def page_label(self) -> str:
        return page_label(self.page, self.total)

    @rx.var
    def delete_label(self) -> str:
        return delete_label(len(self.selected), self.total)

    @rx.event
    def load(self):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        self.selected = []
        self._reload(uid)
        return None

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
        self.page, self.selected = 0, []
        self._reload(uid)
        return None

    @rx.event
    def move_page(self, delta: int):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        self.page = clamp_page(self.page + delta, self.total)
        self._reload(uid)
        return None

    @rx.event
    def toggle(self, order_id: str):
        if order_id in self.selected:
            self.selected = [i for i in self.selected if i != order_id]
        else:
            self.selected = [*self.selected, order_id]

    @rx.event
    def download(self, fmt: str):
        """Exactly what the filters show, streamed by the backend (the page never freezes)."""
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        f = self._filter()
        params = {**asdict(f), "format": fmt,
                  "date_from": f.date_from.isoformat() if f.date_from else None,
                  "date_to": f.date_to.isoformat() if f.date_to else None}
        token = downloads.issue(connection(), uid, "orders", params)
        url = f"{get_config().api_url}/download/{token}"
        # An attachment: the browser saves it and stays on this page.
        return rx.call_script(f"window.location.href = {url!r}")

    @rx.event
    def ask_delete(self):
        self.confirm_delete = True

    @rx.event
    def cancel_delete(self):
        self.confirm_delete = False

    @rx.event
    def delete(self):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        with session_scope() as s:
            if self.selected:
                n = orders.delete_orders(s, uid, ids=[int(i) for i in self.selected])
            else:
                n = orders.delete_orders(s, uid, f=self._filter())
        self.confirm_delete, self.selected, self.page = False, [], 0
        self._reload(uid)
        return rx.toast(f"Deleted {n} order(s)")
