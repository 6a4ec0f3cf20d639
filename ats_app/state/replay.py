"""Replay page state: start a what-if replay as a job, follow its progress, read its grid."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import reflex as rx
from sqlmodel import col, select

from ats_app import routes
from ats_app.engine.broker.charges import Segment
from ats_app.engine.core.clock import ist_stamp
from ats_app.engine.core.errors import AtsError, ValidationError
from ats_app.engine.reports import replay
from ats_app.engine.reports.metrics import round_trip_charges
from ats_app.engine.reports.replay_rules import Setting
from ats_app.engine.store import audit
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import ReplayRun
from ats_app.engine.store.queueing import connection
from ats_app.engine.tenants import webhooks
from ats_app.state.auth import AuthState, sentence
from ats_app.state.reports import money

TV = "TradingView export (CSV)"
MAX_UPLOAD = 5_000_000


def key_of(r: dict[str, Any]) -> str:
    return f"{r['sl']:g}|{r['target']:g}|{r['tsl']:g}"


def level(v: float) -> str:
    return "off" if not v else f"{v:g} %"


def result_rows(results: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The grid as the table shows it, best net P&L first."""
    rows = []
    for r in sorted(results, key=lambda r: -r["net_pnl"]):
        n = r["trades"]
        rows.append({"key": key_of(r), "sl": level(r["sl"]), "target": level(r["target"]),
                     "tsl": level(r["tsl"]), "trades": str(n),
                     "win_rate": f"{100 * r['wins'] / n:.0f} %" if n else "–",
                     "gross_pnl": money(r["gross_pnl"]), "net_pnl": money(r["net_pnl"]),
                     "max_drawdown": money(r["max_drawdown"])})
    return rows


def heat_map(results: list[dict[str, Any]], tsl: float) -> tuple[list[str],
                                                                 list[list[dict[str, str]]]]:
    """SL (rows) x target (columns) net P&L at one trailing setting, coloured by sign and
    size: green gains, red losses, stronger for larger."""
    picked = [r for r in results if r["tsl"] == tsl]
    sls = sorted({r["sl"] for r in picked})
    targets = sorted({r["target"] for r in picked})
    top = max((abs(r["net_pnl"]) for r in picked), default=0) or 1
    cell = {(r["sl"], r["target"]): r["net_pnl"] for r in picked}
    rows = []
    for sl in sls:
        row = [{"text": f"SL {level(sl)}", "bg": "transparent"}]
        for t in targets:
            v = cell.get((sl, t))
            if v is None:
                row.append({"text": "", "bg": "transparent"})
                continue
            alpha = 0.15 + 0.6 * abs(v) / top
            rgb = "47,158,68" if v > 0 else "224,49,49"
            row.append({"text": money(v), "bg": f"rgba({rgb},{alpha:.2f})"})
        rows.append(row)
    return ["", *[f"target {level(t)}" for t in targets]], rows


def curve(result: dict[str, Any], actual: dict[str, Any], quantities: list[int],
          segments: list[str]) -> list[dict[str, Any]]:
    """Cumulative net P&L trade by trade (each trade's charges from the paper broker's
    model, as the replay charged it): the chosen setting beside what really happened."""
    def series(r: dict[str, Any]) -> list[float]:
        total, out = Decimal(0), []
        for e, q, seg in zip(r["exits"], quantities, segments, strict=False):
            entry, exit_price = Decimal(str(e["entry_price"])), Decimal(str(e["exit_price"]))
            total += (exit_price - entry) * q - round_trip_charges(Segment(seg), entry,
                                                                  exit_price, q)
            out.append(float(total.quantize(Decimal("0.01"))))
        return out

    mine, real = series(result), series(actual)
    start = [{"label": "0", "replay": 0.0, "actual": 0.0}]  # before the first trade
    return start + [{"label": str(i + 1), "replay": a, "actual": b}
                    for i, (a, b) in enumerate(zip(mine, real, strict=False))]


class ReplayState(AuthState):
    sources: list[str] = [TV]
    source: str = TV
    csv_name: str = ""
    symbol: str = ""
    exchange: str = "NSE"
    sl: str = "0.2,0.5"
    target: str = "0.3,1"
    tsl: str = "0,0.15"
    runs: list[dict[str, str]] = []
    run_id: int = 0
    status: str = ""
    progress: int = 0
    progress_text: str = ""
    rows: list[dict[str, str]] = []
    chosen: str = ""
    chosen_label: str = ""
    heat_head: list[str] = []
    heat: list[list[dict[str, str]]] = []
    equity: list[dict[str, Any]] = []
    run_link: int = 0
    confirm_apply: str = ""  # the setting waiting for the trader's yes
    apply_text: str = ""
    watching: bool = False
    _csv: str = ""
    _links: dict[str, int] = {}
    _result: dict[str, Any] = {}

    def _lists(self, uid: int) -> None:
        with session_scope() as s:
            self._links = {f"Link: {v.name} (#{v.id})": v.id for v in webhooks.list_links(s, uid)}
            runs = s.exec(select(ReplayRun).where(ReplayRun.user_id == uid)
                          .order_by(col(ReplayRun.id).desc()).limit(10)).all()
            self.runs = [{"id": str(r.id), "label": r.label, "status": r.status,
                          "progress": f"{r.progress} %", "message": r.message,
                          "created": ist_stamp(r.created_at)} for r in runs]
        self.sources = [TV, *self._links]
        if self.source not in self.sources:
            self.source = TV

    def _show(self, uid: int, run_id: int) -> None:
        with session_scope() as s:
            run = s.get(ReplayRun, run_id)
            if run is None or run.user_id != uid:  # scoped: only the user's own runs
                return
            self.run_id, self.status, self.progress = run_id, run.status, run.progress
            self.progress_text = run.message
            self.run_link = run.link_id or 0
            self._result = json.loads(run.result) if run.result else {}
        self.rows = result_rows(self._result.get("results", []))
        if self.rows and self.chosen not in {r["key"] for r in self.rows}:
            self.chosen = self.rows[0]["key"]
        self._draw()

    def _draw(self) -> None:
        results = self._result.get("results", [])
        pick = next((r for r in results if key_of(r) == self.chosen), None)
        if pick is None:
            self.heat_head, self.heat, self.equity, self.chosen_label = [], [], [], ""
            return
        self.chosen_label = (f"SL {level(pick['sl'])} · target {level(pick['target'])} · "
                             f"trail {level(pick['tsl'])}")
        self.heat_head, self.heat = heat_map(results, pick["tsl"])
        self.equity = curve(pick, self._result["actual"], self._result.get("quantities", []),
                            self._result.get("segments", []))

    @rx.event
    def load(self):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        self._lists(uid)
        if self.runs:
            self._show(uid, int(self.runs[0]["id"]))
            if self.status in ("QUEUED", "RUNNING"):
                return ReplayState.watch
        return None

    @rx.event
    def set_source(self, value: str):
        self.source = value

    @rx.event
    def set_symbol(self, value: str):
        self.symbol = value

    @rx.event
    def set_exchange(self, value: str):
        self.exchange = value

    @rx.event
    def set_sl(self, value: str):
        self.sl = value

    @rx.event
    def set_target(self, value: str):
        self.target = value

    @rx.event
    def set_tsl(self, value: str):
        self.tsl = value

    @rx.event
    async def upload(self, files: list[rx.UploadFile]):
        for f in files[:1]:
            data = await f.read()
            if len(data) > MAX_UPLOAD:
                self.error = "That file is over 5 MB: not a trade list."
                return
            try:
                self._csv = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                self.error = "That file is not text (CSV)."
                return
            self.csv_name = f.name or "trades.csv"
            self.error = ""

    def _refuse(self, uid: int, exc: Exception) -> None:
        self.error = sentence(exc)
        with session_scope() as s:
            audit.record(s, "replay.refused", user_id=uid, subject=self.source[:120],
                         error=str(exc)[:300])

    @rx.event
    def start(self):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        self.error = self.message = ""
        try:
            grid = {"sl": self.sl, "target": self.target, "tsl": self.tsl}
            replay.settings_grid(*(replay.parse_grid(v, k) for k, v in grid.items()))
            with session_scope() as s:
                link_id = self._links.get(self.source)
                if link_id is not None:
                    trades = replay.link_trades(s, uid, link_id)
                    link = webhooks.get_link(s, uid, link_id)
                    account = link.accounts[0].account_id if link.accounts else None
                    label = f"{self.source}: {len(trades)} trades"
                else:
                    if not self._csv:
                        raise ValidationError("Choose a TradingView 'List of trades' CSV first.",
                                              "trades")
                    if not self.symbol.strip() or not self.exchange.strip():
                        raise ValidationError("Give the symbol and exchange the export traded.",
                                              "symbol")
                    account = None
                    token = replay.instrument_token(s, uid, None, self.symbol.strip(),
                                                    self.exchange.strip().upper())
                    trades, _ = replay.tradingview_trades(self._csv, self.symbol.strip(),
                                                          self.exchange.strip().upper(), token)
                    label = f"{self.csv_name} on {self.exchange.upper()}:{self.symbol}: " \
                            f"{len(trades)} trades"
                run = replay.create_run(s, uid, source="link" if link_id else "tradingview",
                                        label=label, link_id=link_id,
                                        params={**grid, "account_id": account,
                                                "trades": replay.trades_to_json(trades)})
                run_id = run.id
        except (AtsError, ValueError) as exc:
            self._refuse(uid, exc)
            return None
        assert run_id is not None
        replay.enqueue(run_id, connection())
        self.chosen = ""
        self._lists(uid)
        self._show(uid, run_id)
        return ReplayState.watch

    @rx.event(background=True)
    async def watch(self):
        """Follow the job's progress (the worker writes it on the run's row)."""
        async with self:
            if self.watching:
                return
            self.watching = True
        try:
            for _ in range(3600):
                await asyncio.sleep(1.0)
                async with self:
                    uid = self._user_id()
                    if uid is None or not self.run_id:
                        return
                    await asyncio.to_thread(self._show, uid, self.run_id)
                    if self.status not in ("QUEUED", "RUNNING"):
                        self._lists(uid)
                        return
        finally:
            async with self:
                self.watching = False

    @rx.event
    def open_run(self, run_id: str):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        self.chosen = ""
        self._show(uid, int(run_id))
        return ReplayState.watch if self.status in ("QUEUED", "RUNNING") else None

    @rx.event
    def choose(self, key: str):
        self.chosen = key
        self._draw()

    @rx.event
    def ask_apply(self, key: str):
        sl, target, tsl = (float(v) for v in key.split("|"))
        self.confirm_apply = key
        self.apply_text = (f"Link #{self.run_link} will trade with stop-loss {level(sl)}, "
                           f"target {level(target)}, trail {level(tsl)}. Positions opened from "
                           "now on use these levels; open positions keep their own.")

    @rx.event
    def cancel_apply(self):
        self.confirm_apply = ""

    @rx.event
    def apply_to_link(self):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        key, self.confirm_apply = self.confirm_apply, ""
        if not key:
            return None
        if not self.run_link:
            self.error = "This replay is of a TradingView export: no link to apply it to."
            return None
        try:
            sl, target, tsl = (Decimal(v) for v in key.split("|"))
            with session_scope() as s:
                replay.apply_setting(s, uid, self.run_link, Setting(sl, target, tsl))
        except (AtsError, ValueError) as exc:
            self._refuse(uid, exc)
            return None
        self.message = (f"Link #{self.run_link} now trades with stop-loss {level(float(sl))}, "
                        f"target {level(float(target))}, trail {level(float(tsl))}.")
        return rx.toast.success(self.message)  # the button may be far below the banner
