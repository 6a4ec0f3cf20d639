"""Helpers and constants shared by the risk tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sqlmodel import select
from starlette.testclient import TestClient

from ats_app.api import build_api
from ats_app.engine.core.fsm import OrderStatus, is_terminal
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import AuditEvent, Order, Position

ROOT = Path(__file__).resolve().parents[2]
CLIENT, PIN, SECRET, API_KEY = "T3001", "2468", "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU", "k1"
CLIENT2, CLIENT3 = "T3002", "T3003"
TRADING_DAY = "2026-12-02"  # a Wednesday, no holiday
IN_SESSION = f"{TRADING_DAY}T10:00:00+05:30"


def worker_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _working_orders() -> int:
    with session_scope() as s:
        statuses = s.exec(select(Order.status)).all()
    return sum(not is_terminal(OrderStatus(st)) for st in statuses)


def run_burst_worker(timeout: float = 60) -> None:
    """A worker that drains the queues and exits, again while an order is still working:
    no job waits for a fill, so a live order is finished by its account's follower, a job
    scheduled a moment later that a single burst can exit before (a real worker keeps
    running)."""
    deadline = time.monotonic() + timeout
    while True:
        # one job thread: the queue drained in order, as these tests' sequences expect
        proc = subprocess.run([sys.executable, "-m", "ats_app.cli", "worker", "--burst",
                               "--threads", "1"],
                              env=worker_env(), cwd=os.getcwd(), capture_output=True,
                              text=True, timeout=timeout)
        assert proc.returncode == 0, proc.stderr[-3000:]
        if not _working_orders() or time.monotonic() > deadline:
            return
        time.sleep(0.2)


def post_alert(link: tuple[str, str], **fields: object) -> dict:
    body = {"secret": link[1], "action": "buy", "symbol": "NIFTY", "option": "CE",
            "strike": "ATM", "lots": 1, **fields}
    resp = TestClient(build_api()).post(f"/webhook/{link[0]}", content=json.dumps(body))
    assert resp.status_code in (200, 202), resp.text
    return resp.json()


def all_orders() -> list[Order]:
    with session_scope() as s:
        return list(s.exec(select(Order).order_by(Order.id)).all())


def all_positions() -> list[Position]:
    with session_scope() as s:
        return list(s.exec(select(Position).order_by(Position.id)).all())


def audit_events(action: str) -> list[AuditEvent]:
    with session_scope() as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)).all())
