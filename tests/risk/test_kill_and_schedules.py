"""Against the SmartAPI simulator with real RQ workers: the kill switch leaves no open
position or order; the square-off exits everything once; the pre-open login runs once with
three racing processes and once with three RQ workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
import redis
from rq import Queue
from rq.job import Job

from ats_app.engine.broker.base import Contract, OrderRequest, OrderType, Side
from ats_app.engine.broker.factory import broker_for
from ats_app.engine.core.config import reset_settings_cache
from ats_app.engine.core.fsm import OrderEvent, OrderStatus, is_terminal
from ats_app.engine.execution import halt, order_store
from ats_app.engine.market import hours as market_hours
from ats_app.engine.risk import gate, schedules
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Alert, Order
from ats_app.engine.store.redis_conn import EXITS_QUEUE
from ats_app.engine.tenants import accounts
from tests.risk.kit import (
    API_KEY,
    CLIENT2,
    CLIENT3,
    PIN,
    SECRET,
    TRADING_DAY,
    all_orders,
    all_positions,
    audit_events,
    post_alert,
    run_burst_worker,
    worker_env,
)

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _open_two_positions(world: dict) -> None:
    post_alert(world["links"]["a"], id="a-1")
    post_alert(world["links"]["b"], id="b-1")
    run_burst_worker()
    assert [p.status for p in all_positions()] == ["OPEN", "OPEN"]


def _resting_entry(world: dict, redis_url: str) -> Order:
    """A live LIMIT buy far below the market: the broker holds it open."""
    filled = all_orders()[0]
    conn = redis.Redis.from_url(redis_url)
    with session_scope() as s:
        broker = broker_for(s, world["user"], world["account"], paper=False, redis=conn)
    order = order_store.create(Order(
        user_id=world["user"], account_id=world["account"], client_order_id="KILLTEST1",
        purpose="ENTRY", exchange=filled.exchange, symbol=filled.symbol,
        symbol_token=filled.symbol_token, side="BUY", order_type="LIMIT",
        quantity=filled.quantity, price_paise=5, paper=False))
    order_store.transition(order.id, OrderEvent.SUBMIT)
    contract = Contract(filled.exchange, filled.symbol, filled.symbol_token, 1, Decimal("0.05"))
    report = broker.place_order(OrderRequest("KILLTEST1", contract, Side.BUY, filled.quantity,
                                             OrderType.LIMIT, price=Decimal("0.05")))
    order = order_store.apply_report(order.id, report)
    deadline = time.monotonic() + 15
    while order.status != OrderStatus.OPEN:
        assert time.monotonic() < deadline, order.status
        time.sleep(1.1)  # order book: 1 request a second
        order = order_store.apply_report(order.id, broker.find_order("KILLTEST1"))
    return order


def test_kill_switch_leaves_no_open_position_or_order(world: dict, redis_url: str) -> None:
    _open_two_positions(world)
    resting = _resting_entry(world, redis_url)
    queued = post_alert(world["links"]["a"], action="buy", id="queued-1")  # waits in RQ
    assert queued["status"] == "accepted"

    report = halt.kill(world["user"], settle_seconds=10)
    assert report.cancelled == [resting.client_order_id] and len(report.exits_enqueued) == 2
    assert report.still_in_flight == [] and report.cancel_failed == {}
    run_burst_worker()  # the exits, and the queued alert (refused: kill switch)

    positions = all_positions()
    assert [(p.status, p.exit_reason) for p in positions] == [("CLOSED", "kill_switch")] * 2
    orders = all_orders()
    assert all(is_terminal(OrderStatus(o.status)) for o in orders), [o.status for o in orders]
    assert order_store.get(resting.id).status == OrderStatus.CANCELLED
    assert sum(o.purpose == "EXIT" and o.status == "FILLED" for o in orders) == 2
    with session_scope() as s:
        alert = s.get(Alert, queued["alert_id"])
    assert alert.status == "REJECTED" and "kill switch" in alert.reason
    # The broker's own book agrees: nothing of ours is still working there.
    with session_scope() as s:
        broker = broker_for(s, world["user"], world["account"], paper=False,
                            redis=redis.Redis.from_url(redis_url))
    time.sleep(1.1)
    assert all(is_terminal(o.status) for o in broker.orders())
    assert [a.action for a in audit_events("kill_switch.engaged")] == ["kill_switch.engaged"]


def test_square_off_exits_everything_once(world: dict, redis_url: str) -> None:
    _open_two_positions(world)
    with session_scope() as s:
        gate.set_limits(s, world["user"], square_off_at="15:20")
    assert schedules.run_square_off(TRADING_DAY, "15:15")["exits"] == {}  # not this user's time
    first = schedules.run_square_off(TRADING_DAY, "15:20")
    second = schedules.run_square_off(TRADING_DAY, "15:20")
    assert sorted(first["exits"][world["user"]]) == [p.id for p in all_positions()]
    assert second["status"] == "already ran"
    conn = redis.Redis.from_url(redis_url)
    assert len(Queue(EXITS_QUEUE, connection=conn)) == 2
    # Even past the guard (a later run, another time), claimed positions are not exited twice.
    assert schedules.run_square_off(TRADING_DAY, "15:25")["exits"] == {}
    run_burst_worker()
    positions = all_positions()
    assert [(p.status, p.exit_reason) for p in positions] == [("CLOSED", "square_off")] * 2
    exits = [o for o in all_orders() if o.purpose == "EXIT"]
    assert sorted(o.position_id for o in exits) == [p.id for p in positions]  # one each


def test_no_square_off_when_the_market_never_closes(
    world: dict, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MARKET_HOURS=always (paper at any hour) takes entries past the square-off time, so the
    scheduled square-off leaves positions alone there, and says so in the audit log."""
    _open_two_positions(world)
    monkeypatch.setenv("TRADING_MODE", "paper")
    monkeypatch.setenv("MARKET_HOURS", "always")
    reset_settings_cache()
    assert schedules.run_square_off(TRADING_DAY, "15:15")["status"] == "skipped"
    assert len(Queue(EXITS_QUEUE, connection=redis.Redis.from_url(redis_url))) == 0
    assert [p.status for p in all_positions()] == ["OPEN", "OPEN"]
    (event,) = audit_events("schedule.square_off")
    assert json.loads(event.detail)["skipped"] == "MARKET_HOURS=always"
    monkeypatch.setenv("MARKET_HOURS", "nse")  # the same day's run, with NSE hours: it exits
    reset_settings_cache()
    assert len(schedules.run_square_off(TRADING_DAY, "15:15")["exits"][world["user"]]) == 2


def _add_accounts(world: dict) -> None:
    sim = world["sim"]
    with session_scope() as s:
        accounts.add_account(s, world["user"], label="two", client_id=CLIENT2, api_key=API_KEY,
                             pin=PIN, totp_secret=SECRET, base_url=sim.base_url)
        accounts.add_account(s, world["user"], label="bad", client_id=CLIENT3, api_key=API_KEY,
                             pin="0000", totp_secret=SECRET, base_url=sim.base_url)


def _assert_logged_in_once_each(world: dict) -> None:
    ok = sorted(e.subject for e in audit_events("account.login_ok"))
    failed = audit_events("account.login_failed")
    assert len(ok) == 2 and len(set(ok)) == 2, ok
    assert len(failed) == 1 and json.loads(failed[0].detail)["client_id"] == CLIENT3
    assert failed[0].user_id == world["user"]  # the dashboard shows it to its owner


def test_pre_open_runs_once_with_three_racing_processes(world: dict) -> None:
    _add_accounts(world)
    code = ("import json, sys; from ats_app.engine.risk.schedules import run_pre_open; "
            f"print(json.dumps(run_pre_open({TRADING_DAY!r})['status']))")
    procs = [subprocess.Popen([sys.executable, "-c", code], env=worker_env(), cwd=os.getcwd(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(results) == ["already ran", "already ran", "done"]
    _assert_logged_in_once_each(world)
    (run,) = audit_events("schedule.pre_open")
    assert set(json.loads(run.detail)["masters"].values()) == {"ok"}  # scrip master refreshed


def test_pre_open_scheduled_on_rq_runs_once_with_three_workers(world: dict,
                                                               redis_url: str) -> None:
    _add_accounts(world)
    conn = redis.Redis.from_url(redis_url)
    run = schedules.Run("pre_open", datetime.fromisoformat(TRADING_DAY).date(),
                        schedules.PRE_OPEN_AT)
    due = market_hours.now() - timedelta(seconds=1)  # on the app's (frozen) clock
    assert schedules.schedule(conn, run, when=due) is True
    assert schedules.schedule(conn, run, when=due) is False  # same run: one job
    workers = [subprocess.Popen([sys.executable, "-m", "ats_app.cli", "worker", "--burst"],
                                env=worker_env(), cwd=os.getcwd(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for w in workers:
        _, err = w.communicate(timeout=60)
        assert w.returncode == 0, err[-2000:]
    job = Job.fetch(run.job_id, connection=conn)
    assert job.get_status() == "finished" and job.return_value()["status"] == "done"
    _assert_logged_in_once_each(world)
    # The run planned the next ones (it rolls forward by itself).
    assert any(j.startswith("ats-sched-") for j in
               Queue("default", connection=conn).scheduled_job_registry.get_job_ids())
