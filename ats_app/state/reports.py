"""Reports page state: a scope (all, a link, a strategy, an account), dates, paper or live."""

from __future__ import annotations

from typing import Any

import reflex as rx

from ats_app import routes
from ats_app.engine.core.clock import parse_day
from ats_app.engine.core.errors import AtsError
from ats_app.engine.reports.report import build_report
from ats_app.engine.store.db import session_scope
from ats_app.engine.tenants import accounts, strategies, webhooks
from ats_app.state.auth import AuthState, sentence

ALL = "All trades"


def money(v: float | None) -> str:
    return "–" if v is None else f"{v:,.2f}"


def chart_rows(section: dict[str, Any]) -> tuple[list[dict[str, Any]], ...]:
    """The report's series as the charts read them (labels as screens show IST days)."""
    equity = [{"label": e["time"][:16].replace("T", " "), "equity": e["equity"]}
              for e in section["equity"]]
    daily = [{"day": d["day"], "gain": max(d["net_pnl"], 0), "loss": min(d["net_pnl"], 0)}
             for d in section["daily"]]
    reasons = [{"reason": k, "count": v} for k, v in sorted(section["exit_reasons"].items())]
    return equity, daily, reasons


def stats(section: dict[str, Any]) -> dict[str, str]:
    rate = section["win_rate"]
    pf = section["profit_factor"]
    return {
        "trades": str(section["trades"]),
        "win_rate": "–" if rate is None else f"{rate:.1f} %",
        "avg_win": money(section["avg_win"]), "avg_loss": money(section["avg_loss"]),
        "profit_factor": "–" if pf is None else f"{pf:.2f}",
        "expectancy": money(section["expectancy"]),
        "max_drawdown": money(section["max_drawdown"]),
        "charges": money(section["charges"]), "net_pnl": money(section["net_pnl"]),
    }


class ReportsState(AuthState):
    scopes: list[str] = [ALL]
    scope: str = ALL
    mode: str = "paper"
    date_from: str = ""
    date_to: str = ""
    figures: dict[str, str] = {}
    equity: list[dict[str, Any]] = []
    daily: list[dict[str, Any]] = []
    reasons: list[dict[str, Any]] = []
    links: list[dict[str, str]] = []
    _scope_ids: dict[str, tuple[str, int]] = {}

    def _scope_list(self, uid: int) -> None:
        with session_scope() as s:
            ids: dict[str, tuple[str, int]] = {}
            for link in webhooks.list_links(s, uid):
                ids[f"Link: {link.name} (#{link.id})"] = ("link", link.id)
            for st in strategies.list_strategies(s, uid):
                ids[f"Strategy: {st.name} (#{st.id})"] = ("strategy", st.id)
            for a in accounts.list_accounts(s, uid):
                ids[f"Account: {a.label} (#{a.id})"] = ("account", a.id)
        self._scope_ids = ids
        self.scopes = [ALL, *ids]
        if self.scope not in self.scopes:
            self.scope = ALL

    def _refresh(self, uid: int) -> None:
        kind, row_id = self._scope_ids.get(self.scope, ("", 0))
        try:
            start, end = parse_day(self.date_from), parse_day(self.date_to)
            with session_scope() as s:
                out = build_report(
                    s, uid, link_id=row_id if kind == "link" else None,
                    strategy_id=row_id if kind == "strategy" else None,
                    account_id=row_id if kind == "account" else None, start=start, end=end)
        except (ValueError, AtsError) as exc:
            self.error = sentence(exc)
            return
        self.error = ""
        section = out[self.mode]
        self.figures = stats(section)
        self.equity, self.daily, self.reasons = chart_rows(section)
        self.links = [{"link": r["link"], "mode": r["mode"], "trades": str(r["trades"]),
                       "win_rate": "–" if r["win_rate"] is None else f"{r['win_rate']:.1f} %",
                       "net_pnl": money(r["net_pnl"]), "charges": money(r["charges"]),
                       "max_drawdown": money(r["max_drawdown"])} for r in out["links"]]

    @rx.event
    def load(self):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        self._scope_list(uid)
        self._refresh(uid)
        return None

    @rx.event
    def set_scope(self, value: str):
        self.scope = value
        return ReportsState.apply

    @rx.event
    def set_mode(self, value: str | list[str]):
        self.mode = "live" if value == "live" else "paper"
        return ReportsState.apply

    @rx.event
    def set_date_from(self, value: str):
        self.date_from = value

    @rx.event
    def set_date_to(self, value: str):
        self.date_to = value

    @rx.event
    def apply(self):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        self._refresh(uid)
        return None
