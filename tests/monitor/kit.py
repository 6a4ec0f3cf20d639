"""Helpers for the monitor end-to-end tests: the simulator, users/links, alerts, processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import redis
from sqlmodel import select
from starlette.testclient import TestClient

from ats_app.api import build_api
from ats_app.engine.risk import bot
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Alert, AuditEvent, Order, Position
from ats_app.engine.store.redis_conn import MONITOR_HEARTBEAT_KEY
from ats_app.engine.tenants import users, webhooks
from ats_app.simulator.server import ServerThread

ROOT = Path(__file__).resolve().parents[2]
TICK = Decimal("0.05")


def wait_for(pred: Callable[[], Any], timeout: float, what: str, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


def on_grid(value: Decimal) -> Decimal:
    return (value / TICK).quantize(Decimal(1), rounding=ROUND_HALF_UP) * TICK


def make_user(name: str) -> int:
    with session_scope() as s:
        uid = users.create_user(s, name, "password123", "T", "R").id
        bot.set_running(s, uid, True)
    return uid


def make_link(uid: int, name: str, sl: float | None, target: float | None,
              tsl: float | None) -> tuple[str, str]:
    with session_scope() as s:
        link, secret = webhooks.create_link(
            s, uid, name=name, accounts=[], strategy_id=None, stop_loss_pct=sl,
            target_pct=target, trailing_stop_pct=tsl, paper=True)
    return link.token, secret


def post(link: tuple[str, str], **fields: object) -> dict:
    body: dict[str, object] = {"secret": link[1], "action": "buy", "lots": 1, **fields}
    if "tradingsymbol" not in fields:
        body = {"symbol": "NIFTY", "option": "CE", "strike": "ATM", **body}
    resp = TestClient(build_api()).post(f"/webhook/{link[0]}", content=json.dumps(body))
    assert resp.status_code in (200, 202), resp.text
    return resp.json()


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def run_burst_worker(timeout: float = 60) -> None:
    # One job thread: the queue drained in order (positions opened in the order posted).
    proc = subprocess.run([sys.executable, "-m", "ats_app.cli", "worker", "--burst",
                           "--threads", "1"],
                          env=env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]


class Procs:
    """Child processes (feed, monitor, worker) in their own process groups; all stopped."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, module_args: list[str], **extra: str) -> subprocess.Popen:
        out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the child
        proc = subprocess.Popen([sys.executable, "-m", *module_args], env={**env(), **extra},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        self.procs[name] = proc
        return proc

    def kill9(self, name: str) -> None:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def positions() -> list[Position]:
    with session_scope() as s:
        return list(s.exec(select(Position).order_by(Position.id)).all())


def position(pid: int) -> Position:
    with session_scope() as s:
        p = s.get(Position, pid)
        assert p is not None
        return p


def sells(pid: int) -> list[Order]:
    with session_scope() as s:
        return list(s.exec(select(Order).where(Order.position_id == pid)
                           .where(Order.side == "SELL")).all())


def audit(action: str, pid: int | None = None) -> list[dict]:
    with session_scope() as s:
        stmt = select(AuditEvent).where(AuditEvent.action == action)
        if pid is not None:
            stmt = stmt.where(AuditEvent.subject == str(pid))
        return [json.loads(e.detail or "{}") for e in s.exec(stmt).all()]


def alerts() -> list[tuple[str, str | None]]:
    with session_scope() as s:
        return [(a.status, a.reason) for a in s.exec(select(Alert)).all()]


def heartbeat(r: redis.Redis) -> dict:
    raw = r.get(MONITOR_HEARTBEAT_KEY)
    return json.loads(raw) if raw else {}


def sim_price(sim: ServerThread, token: str, *, ltp: Decimal | None = None,
              path: list[Decimal] | None = None, interval_ms: int = 300) -> None:
    body: dict[str, Any] = {"token": token}
    if path is not None:
        body.update(path=[float(p) for p in path], interval_ms=interval_ms)
    else:
        body["ltp"] = None if ltp is None else float(ltp)
    httpx.post(f"{sim.base_url}/sim/price", json=body, timeout=5).raise_for_status()


def sim_subscribed(sim: ServerThread) -> set[str]:
    """Tokens the simulator's feed sockets are subscribed to right now (all clients)."""
    return {tok for conns in list(sim.state.feed_conns.values()) for c in list(conns)
            for (_mode, tok) in list(c.subs)}


def sim_spot_tokens(sim: ServerThread) -> set[str]:
    """The index spots the feed follows always (those the simulator's master lists)."""
    from ats_app.engine.execution.contracts import index_for
    from ats_app.engine.market.feed_sources import SPOT_UNDERLYINGS

    index = index_for(sim.base_url)
    return {r.token for r in map(index.spot_instrument, SPOT_UNDERLYINGS) if r is not None}
