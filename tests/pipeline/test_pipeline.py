"""Alert → RQ job → exactly one order, with real RQ worker processes and the SmartAPI
simulator as the broker (live through the official SDK, paper priced from it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyotp
import pytest
import redis
from rq import Queue
from SmartApi import SmartConnect
from SmartApi.smartExceptions import DataException
from sqlmodel import select
from starlette.testclient import TestClient

from ats_app.api import build_api
from ats_app.engine.core.config import reset_settings_cache
from ats_app.engine.execution import follower
from ats_app.engine.execution.recovery import cleanup_abandoned_jobs
from ats_app.engine.risk import bot
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Alert, Order, Position
from ats_app.engine.tenants import accounts, strategies, users, webhooks
from ats_app.simulator.config import AccountSpec, SimConfig, demo_account
from ats_app.simulator.server import ServerThread
from tests.pipeline.sim_book import market_filled_at_sim

ROOT = Path(__file__).resolve().parents[2]
CLIENT, PIN, SECRET, API_KEY = "T2001", "2468", "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU", "k1"


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerThread]:
    monkeypatch.chdir(tmp_path)  # the SDK writes logs/ into the working directory
    server = ServerThread(
        SimConfig(
            accounts=[AccountSpec(CLIENT, PIN, SECRET), demo_account()], engine_interval_ms=20
        )
    ).start()
    monkeypatch.setenv("SIMULATOR_PORT", str(server.port))
    monkeypatch.setenv("ATS_SIMULATOR", "true")
    monkeypatch.setenv("ATS_IP_ECHO_URL", "")
    monkeypatch.delenv("SCRIP_MASTER_URL", raising=False)
    reset_settings_cache()
    yield server
    server.stop()


@pytest.fixture
def world(
    database_url: str, redis_url: str, sim: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> dict:
    monkeypatch.setenv("TRADING_MODE", "live")
    # Live trading keeps NSE hours: trade on a Wednesday morning whatever the wall clock says
    # (the worker processes inherit this dev-only frozen clock).
    monkeypatch.setenv("ATS_FAKE_NOW", "2026-12-02T10:00:00+05:30")
    reset_settings_cache()
    with session_scope() as s:
        uid = users.create_user(s, "trader", "password123", "T", "R").id
        acc = accounts.add_account(
            s,
            uid,
            label="sim",
            client_id=CLIENT,
            api_key=API_KEY,
            pin=PIN,
            totp_secret=SECRET,
            base_url=sim.base_url,
        )
        strat = strategies.create_strategy(s, uid, "ORB")
        live, live_secret = webhooks.create_link(
            s,
            uid,
            name="live",
            accounts=[webhooks.LinkAccount(acc.id, 1)],
            strategy_id=strat.id,
            stop_loss_pct=5,
            target_pct=10,
            trailing_stop_pct=None,
            paper=False,
        )
        paper, paper_secret = webhooks.create_link(
            s,
            uid,
            name="paper",
            accounts=[],
            strategy_id=strat.id,
            stop_loss_pct=5,
            target_pct=10,
            trailing_stop_pct=2,
            paper=True,
        )
        bot.set_running(s, uid, True)
    return {
        "user": uid,
        "account": acc.id,
        "live": (live.token, live_secret),
        "paper": (paper.token, paper_secret),
        "sim": sim,
    }


def _worker_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _run_burst_worker(timeout: float = 90) -> None:
    proc = subprocess.run(
        # one job thread: the queue drained in order, as these tests' sequences expect
        [sys.executable, "-m", "ats_app.cli", "worker", "--burst", "--threads", "1"],
        env=_worker_env(),
        cwd=os.getcwd(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    if os.environ.get("PIPELINE_DEBUG"):
        print(proc.stderr[-6000:])
    _follow_working()


def _follow_working(timeout: float = 10) -> None:
    """What the order-update stream does for a market order the job left working: the
    simulator fills it on its next engine tick (50 ms), and a burst worker's follower round
    that read the book sooner re-arms itself for later and the burst ends without it."""
    deadline = time.monotonic() + timeout
    while True:
        with session_scope() as s:
            working = {(o.user_id, o.account_id) for o in s.exec(select(Order)).all()
                       if o.account_id is not None and o.status == "OPEN"
                       and o.order_type == "MARKET"}
        if not working or time.monotonic() > deadline:
            return
        for user_id, account_id in working:
            follower.follow_account(user_id, account_id)


def _post(link: tuple[str, str], **fields: object) -> dict:
    body = {
        "secret": link[1],
        "action": "buy",
        "symbol": "NIFTY",
        "option": "CE",
        "strike": "ATM",
        "lots": 1,
        **fields,
    }
    resp = TestClient(build_api()).post(f"/webhook/{link[0]}", content=json.dumps(body))
    assert resp.status_code in (200, 202), resp.text
    return resp.json()


def _orders() -> list[Order]:
    with session_scope() as s:
        return list(s.exec(select(Order)).all())


def _within_rate_limit(call):
    """The simulator enforces Angel's 1/s login and order-book limits on us too."""
    for _ in range(6):
        try:
            return call()
        except DataException:
            time.sleep(1.1)
    return call()


def _broker_orders(sim: ServerThread, ordertag: str) -> list[dict]:
    """The broker's own order book, read through the official SDK."""
    sc = SmartConnect(api_key=API_KEY, root=sim.base_url)
    _within_rate_limit(lambda: sc.generateSession(CLIENT, PIN, pyotp.TOTP(SECRET).now()))
    book = _within_rate_limit(sc.orderBook)["data"] or []
    return [o for o in book if o.get("ordertag") == ordertag]


def test_live_alert_fills_once_and_opens_position(world: dict) -> None:
    accepted = _post(world["live"], id="live-1")
    assert accepted["status"] == "accepted"
    _run_burst_worker()
    (order,) = _orders()
    assert order.status == "FILLED" and order.side == "BUY" and not order.paper
    assert order.client_order_id == f"A{accepted['alert_id']}E{world['account']}"
    assert order.symbol.startswith("NIFTY") and order.symbol.endswith("CE")
    assert order.quantity % 65 == 0 or order.quantity > 0  # lots x the master's lot size
    assert len(_broker_orders(world["sim"], order.client_order_id)) == 1
    with session_scope() as s:
        (position,) = s.exec(select(Position)).all()
        alert = s.get(Alert, accepted["alert_id"])
    assert position.status == "OPEN" and position.quantity == order.filled_quantity
    assert position.entry_price_paise == order.average_price_paise
    assert position.stop_paise < position.entry_price_paise < position.target_paise
    assert alert.status == "DONE"


def test_paper_alert_fills_without_an_order_route(world: dict) -> None:
    _post(world["paper"], id="paper-1")
    _run_burst_worker()
    (order,) = _orders()
    assert order.paper and order.status == "FILLED" and order.account_id is None
    assert order.average_price_paise and order.average_price_paise > 0
    assert _broker_orders(world["sim"], order.client_order_id) == []  # nothing sent to Angel
    with session_scope() as s:
        (position,) = s.exec(select(Position)).all()
    assert position.paper and position.status == "OPEN"


def test_sell_alert_closes_the_position(world: dict) -> None:
    _post(world["paper"], id="in-1")
    _run_burst_worker()
    _post(world["paper"], action="sell", id="out-1")
    _post(world["paper"], action="exit", id="out-2")  # nothing left to close: ignored
    _run_burst_worker()
    entry, exit_order = sorted(_orders(), key=lambda o: o.id)
    assert (entry.side, exit_order.side) == ("BUY", "SELL")
    assert exit_order.status == "FILLED" and exit_order.quantity == entry.filled_quantity
    with session_scope() as s:
        (position,) = s.exec(select(Position)).all()
    assert position.status == "CLOSED" and position.exit_reason == "signal"
    assert position.realized_pnl_paise == (
        (position.exit_price_paise - position.entry_price_paise) * position.quantity
    )


def test_fifty_concurrent_copies_make_exactly_one_order(world: dict) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: _post(world["live"], id="dup-1"), range(50)))
    assert sum(a["status"] == "accepted" for a in answers) == 1
    _run_burst_worker()
    (order,) = _orders()
    assert len(_broker_orders(world["sim"], order.client_order_id)) == 1


def _kill_worker_while_submitting(sim: ServerThread, fault: dict) -> None:
    """Start a worker, let it send the order into `fault`, SIGKILL it mid-call."""
    sim_url = sim.base_url
    httpx.post(f"{sim_url}/sim/faults", json=fault).raise_for_status()
    # On the wire, seen by the simulator itself (not a guessed sleep): the call has arrived
    # and, for a lost answer, the order is in the book while its answer is held.
    book_has_it = fault["kind"] == "lost_answer"
    worker = subprocess.Popen(
        [sys.executable, "-m", "ats_app.cli", "worker"],
        env=_worker_env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(o.status == "SUBMITTING" for o in _orders()):
            assert time.monotonic() < deadline, "order never reached SUBMITTING"
            time.sleep(0.05)
        while not (sim.state.calls["placeOrder"] >= 1
                   and (sim.state.orders.for_client(CLIENT) or not book_has_it)):
            assert time.monotonic() < deadline, "the order call never reached the simulator"
            time.sleep(0.01)
        os.killpg(worker.pid, signal.SIGKILL)  # the worker process group, no cleanup
        worker.wait(10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    httpx.delete(f"{sim_url}/sim/faults").raise_for_status()


def _retry_abandoned(redis_url: str) -> None:
    # RQ's registry cleanup requeues a job whose worker stopped heart-beating (after 30 s);
    # run it as of a later moment rather than sleeping through it.
    cleanup_abandoned_jobs(redis.Redis.from_url(redis_url), at=time.time() + 600)
    _run_burst_worker()


@pytest.mark.parametrize(
    "fault,placed_first",
    [
        pytest.param({"kind": "lost_answer", "ms": 8000}, True, id="broker-had-it"),
        pytest.param({"kind": "latency", "ms": 3000}, False, id="never-reached-broker"),
    ],
)
def test_worker_killed_mid_order_then_retried_places_one_order(
    world: dict,
    redis_url: str,
    fault: dict,
    placed_first: bool,
) -> None:
    sim = world["sim"]
    accepted = _post(world["live"], id="kill-1")
    _kill_worker_while_submitting(sim, {"route": "placeOrder", **fault})
    time.sleep(1.0)
    _retry_abandoned(redis_url)
    orders = sorted(_orders(), key=lambda o: o.id)
    filled = [o for o in orders if o.status == "FILLED"]
    assert len(filled) == 1, [(o.client_order_id, o.status, o.reason) for o in orders]
    base = f"A{accepted['alert_id']}E{world['account']}"
    if placed_first:  # reconciled by ordertag: the first order IS the fill, nothing resent
        assert [o.client_order_id for o in orders] == [base]
    else:  # the book settled without it: sent once more under a new ordertag
        assert [(o.client_order_id, o.status) for o in orders] == [
            (base, "FAILED"),
            (f"{base}R2", "FILLED"),
        ]
    tags = [o.client_order_id for o in orders]
    assert sum(len(_broker_orders(sim, t)) for t in tags) == 1  # exactly one at the broker
    with session_scope() as s:
        assert s.get(Alert, accepted["alert_id"]).status == "DONE"


def test_broker_timeout_after_accept_is_reconciled(world: dict) -> None:
    sim = world["sim"]
    httpx.post(
        f"{sim.base_url}/sim/faults",
        json={"route": "placeOrder", "kind": "lost_answer", "times": 1},
    ).raise_for_status()
    _post(world["live"], id="timeout-1")
    _run_burst_worker()
    (order,) = _orders()
    assert order.status == "FILLED", (order.status, order.reason)
    assert len(_broker_orders(sim, order.client_order_id)) == 1


def test_margin_rejection_reaches_the_order_row(world: dict) -> None:
    sim = world["sim"]
    httpx.post(
        f"{sim.base_url}/sim/accounts", json={"clientcode": CLIENT, "cash": 1}
    ).raise_for_status()
    _post(world["live"], id="poor-1")
    _run_burst_worker()
    (order,) = _orders()
    assert order.status == "REJECTED" and order.reason
    assert "margin" in order.reason.lower() or "fund" in order.reason.lower()


def test_fan_out_one_order_per_account_and_failures_stay_apart(world: dict) -> None:
    """A link on two accounts: one order each, sized by its multiplier; one account's
    rejection does not block the other's fill."""
    sim = world["sim"]
    demo = demo_account()
    with session_scope() as s:
        second = accounts.add_account(
            s,
            world["user"],
            label="demo",
            client_id=demo.client_code,
            api_key="k2",
            pin=demo.pin,
            totp_secret=demo.totp_secret,
            base_url=sim.base_url,
        )
        link, secret = webhooks.create_link(
            s,
            world["user"],
            name="fan",
            strategy_id=None,
            stop_loss_pct=5,
            target_pct=None,
            trailing_stop_pct=None,
            paper=False,
            accounts=[
                webhooks.LinkAccount(world["account"], 1),
                webhooks.LinkAccount(second.id, 2),
            ],
        )
    httpx.post(
        f"{sim.base_url}/sim/accounts", json={"clientcode": demo.client_code, "cash": 1}
    ).raise_for_status()
    accepted = _post((link.token, secret), id="fan-1")
    _run_burst_worker()
    by_account = {o.account_id: o for o in _orders()}
    assert set(by_account) == {world["account"], second.id}
    first, other = by_account[world["account"]], by_account[second.id]
    assert other.quantity == 2 * first.quantity  # the lot multiplier
    assert first.status == "FILLED" and other.status == "REJECTED"
    with session_scope() as s:
        assert s.get(Alert, accepted["alert_id"]).status == "DONE"  # one account traded


def test_redis_restart_between_accept_and_execution_loses_nothing(
    world: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Alerts accepted, then Redis restarts empty (no persistence): recovery re-enqueues
    them from the database and each still trades exactly once."""
    from ats_app.engine.execution.recovery import requeue_lost_alerts
    from ats_app.engine.services.embedded_redis import free_port, redis_server_binary
    from ats_app.engine.store import redis_conn

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(
            [redis_server_binary(), "--port", str(port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url).ping()
                return proc
            except redis.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.05)

    server = start()
    monkeypatch.setenv("REDIS_URL", url)
    reset_settings_cache()
    redis_conn.forget_shared()
    try:
        ids = [_post(world["live"], action="buy", id="rr-1")["alert_id"]]
        assert Queue("alerts", connection=redis.Redis.from_url(url)).count == 1
        server.terminate()
        server.wait(10)
        server = start()  # back, but empty: the job is gone
        redis_conn.forget_shared()
        assert Queue("alerts", connection=redis.Redis.from_url(url)).count == 0
        assert requeue_lost_alerts(redis.Redis.from_url(url)) == ids
        _run_burst_worker()
        (order,) = _orders()
        assert order.status == "FILLED" and order.alert_id == ids[0]
    finally:
        server.terminate()
        server.wait(10)
        redis_conn.forget_shared()


def test_two_workers_cannot_both_take_the_last_position_slot(world: dict) -> None:
    """max_open_positions=1, two links' alerts executed at the same moment by two workers:
    the check and the order row are taken together, so exactly one order is placed."""
    from ats_app.engine.risk import gate

    with session_scope() as s:
        gate.set_limits(s, world["user"], max_open_positions=1)
        second, secret = webhooks.create_link(
            s, world["user"], name="second", strategy_id=None, stop_loss_pct=5,
            target_pct=None, trailing_stop_pct=None, paper=False,
            accounts=[webhooks.LinkAccount(world["account"], 1)])
    _post(world["live"], id="slot-1")
    _post((second.token, secret), id="slot-2")
    workers = [subprocess.Popen([sys.executable, "-m", "ats_app.cli", "worker", "--burst"],
                                env=_worker_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for _ in range(2)]
    for w in workers:
        assert w.wait(120) == 0
    orders = _orders()
    assert len(orders) == 1, [(o.client_order_id, o.status) for o in orders]
    with session_scope() as s:
        statuses = sorted(a.status for a in s.exec(select(Alert)).all())
    assert statuses == ["DONE", "REJECTED"]


def test_entry_outside_hours_waits_for_the_open_when_the_link_allows(
    world: dict, redis_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rq.registry import ScheduledJobRegistry

    from ats_app.engine.execution.entry import handle_alert

    monkeypatch.setenv("ATS_FAKE_NOW", "2026-12-02T16:00:00+05:30")  # Wednesday, after close
    reset_settings_cache()
    with session_scope() as s:
        queued, qsecret = webhooks.create_link(
            s, world["user"], name="queued", strategy_id=None, stop_loss_pct=5,
            target_pct=None, trailing_stop_pct=None, paper=False, queue_outside_hours=True,
            accounts=[webhooks.LinkAccount(world["account"], 1)])
    refused = _post(world["live"], id="late-1")["alert_id"]  # a link that does not queue
    waiting = _post((queued.token, qsecret), id="late-2")["alert_id"]
    _run_burst_worker()
    with session_scope() as s:
        assert s.get(Alert, refused).status == "REJECTED"
        assert "market closed" in s.get(Alert, refused).reason
        assert s.get(Alert, waiting).status == "QUEUED"
    assert _orders() == []
    registry = ScheduledJobRegistry("alerts", connection=redis.Redis.from_url(redis_url))
    (job_id,) = registry.get_job_ids()
    assert job_id == f"alert-{waiting}-open-20261203"  # Thursday's 09:15 IST open
    # ... 17 h 15 min from now on RQ's wall clock too, whatever today's real date is.
    wait = registry.get_scheduled_time(job_id) - datetime.now(UTC)
    assert abs(wait.total_seconds() - (17 * 3600 + 15 * 60)) < 60, wait
    # At the open, long after the staleness limit, the queued entry trades.
    monkeypatch.setenv("ATS_FAKE_NOW", "2026-12-03T09:15:30+05:30")
    reset_settings_cache()
    assert handle_alert(waiting).startswith("open")  # placed; the job does not wait
    with session_scope() as s:
        assert s.get(Alert, waiting).status == "PLACED"
    market_filled_at_sim(world["sim"])
    follower.follow_account(world["user"], world["account"])  # the book shows the fill
    (order,) = _orders()
    assert order.status == "FILLED" and order.alert_id == waiting
    with session_scope() as s:
        assert s.get(Alert, waiting).status == "DONE"  # the follower gave the verdict
