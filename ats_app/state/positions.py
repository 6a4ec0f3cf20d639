"""Positions page state: open and closed positions, manual exit."""

from __future__ import annotations

from datetime import datetime

import reflex as rx

from ats_app import routes
from ats_app.engine.broker import prices
from ats_app.engine.core.clock import ist_stamp
from ats_app.engine.execution import positions
from ats_app.engine.execution.stop_view import StopView, stop_views
from ats_app.engine.notify.messages import EXIT_REASONS
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.queueing import connection, enqueue_exit
from ats_app.state.auth import AuthState


def position_rows(uid: int, status: str | None = None) -> list[dict[str, str]]:
    """Positions with the latest feed price (for unrealized P&L), as strings for the UI."""
    with session_scope() as s:
        raw = positions.list_positions(s, uid, status)
    conn = connection()
    latest = {}
    for p in raw:
        if p["status"] != "CLOSED":
            tick = prices.read_tick(conn, str(p["exchange"]), str(p["symboltoken"]))
            if tick is not None:
                latest[f"{p['exchange']}:{p['symboltoken']}"] = tick.ltp
    with session_scope() as s:
        rows = positions.list_positions(s, uid, status, ltp=latest)
        stops = stop_views(s, uid, [int(str(r["id"])) for r in rows])
    return open_first([with_stop(position_row(r), stops.get(int(str(r["id"])))) for r in rows])


def with_stop(row: dict[str, str], view: StopView | None) -> dict[str, str]:
    """Where the position's stop lives (ours / at broker), the resting order's trigger and
    id, and what the broker has of it; `stop_warning` "1" when it should hold it and does
    not."""
    view = view or StopView("ours", "", False)
    return {**row, "stop_where": view.where, "stop_state": view.state,
            "stop_warning": "1" if view.warning else "", "broker_trigger": view.trigger or "",
            "broker_order_id": view.broker_order_id or "", "stop_reason": view.reason}


def open_first(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Open and exiting positions above closed ones (each newest first, as given): the ones
    a trader may act on are not below a day's closed trades."""
    return sorted(rows, key=lambda r: r["status"] == "CLOSED")


def position_row(r: dict[str, object]) -> dict[str, str]:
    """A position as the page's strings, with its open and close times as screens show them."""
    row = {k: "" if v is None else str(v) for k, v in r.items()}
    if row.get("status") == "CLOSED":
        row["ltp"] = ""  # today's price of the instrument, not this position's: its exit is
    for key in ("opened", "closed"):
        at = row[f"{key}_at"]
        row[f"{key}_ist"] = ist_stamp(datetime.fromisoformat(at)) if at else ""
    # In words, as the notices say it ("stop-loss at broker"): a code such as
    # stop_loss_at_broker cannot wrap, and pushed the table past a laptop's width.
    row["exit_reason"] = EXIT_REASONS.get(row.get("exit_reason", ""), row.get("exit_reason", ""))
    return row


class PositionsState(AuthState):
    rows: list[dict[str, str]] = []
    confirm_exit: int = 0

    @rx.event
    def load(self):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        self.rows = position_rows(uid)
        return None

    @rx.event
    def ask_exit(self, position_id: str):
        self.confirm_exit = int(position_id)

    @rx.event
    def cancel_exit(self):
        self.confirm_exit = 0

    @rx.event
    def exit_now(self):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        if not any(
            r["id"] == str(self.confirm_exit) and r["status"] == "OPEN" for r in position_rows(uid)
        ):  # scoped: only the user's own positions
            self.confirm_exit = 0
            return rx.toast("That position is not open.")
        enqueue_exit(self.confirm_exit, "manual", connection())
        self.confirm_exit = 0
        self.rows = position_rows(uid)
        return rx.toast("Exit order queued.")
