"""One alert on many live accounts at Angel's pace: every order in flight at once.

The simulator answers placeOrder 150 ms late (a latency fault), as Angel does from a cloud
region. Served one after another, ten accounts' orders would be spread over 1.5 s; at once,
their rows are written within a few ms of each other and the job returns when the slowest
answer is in. One account's lost answer and another's rate-limit refusal stay their own.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import redis
from sqlmodel import col, select
from starlette.testclient import TestClient

from ats_app.api import build_api
from ats_app.engine.broker.factory import broker_for
from ats_app.engine.core.config import reset_settings_cache
from ats_app.engine.execution import entry, follower, recovery, submit, verdict
from ats_app.engine.risk import bot, gate
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Alert, AlertTarget, AuditEvent, Order, Position
from ats_app.engine.tenants import accounts, users, webhooks
from ats_app.simulator.config import AccountSpec, SimConfig
from ats_app.simulator.server import ServerThread
from tests.pipeline.sim_book import book as _book
from tests.pipeline.sim_book import market_filled_at_sim as _market_filled_at_sim

SECRET = "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"


def _client(n: int) -> str:
    return f"F{n:04d}"


def _fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int) -> tuple[ServerThread, dict]:
    monkeypatch.chdir(tmp_path)  # the SDK writes logs/ into the working directory
    sim = ServerThread(SimConfig(accounts=[AccountSpec(_client(i), "1234", SECRET)
                                           for i in range(n)], engine_interval_ms=20)).start()
    monkeypatch.setenv("SIMULATOR_PORT", str(sim.port))
    monkeypatch.setenv("ATS_SIMULATOR", "true")
    monkeypatch.setenv("ATS_IP_ECHO_URL", "")
    monkeypatch.delenv("SCRIP_MASTER_URL", raising=False)
    monkeypatch.setenv("TRADING_MODE", "live")
    monkeypatch.setenv("ATS_FAKE_NOW", "2026-12-02T10:00:00+05:30")  # a Wednesday morning
    reset_settings_cache()
    with session_scope() as s:
        uid = users.create_user(s, "fleet", "password123", "F", "L").id
        ids = [accounts.add_account(s, uid, label=f"acct-{i}", client_id=_client(i),
                                    api_key=f"k{i}", pin="1234", totp_secret=SECRET,
                                    base_url=sim.base_url).id for i in range(n)]
        gate.set_limits(s, uid, max_open_positions=None, max_orders_per_day=None)
        link, secret = webhooks.create_link(
            s, uid, name="fleet", strategy_id=None, stop_loss_pct=5, target_pct=10,
            trailing_stop_pct=None, paper=False,
            accounts=[webhooks.LinkAccount(a, 1) for a in ids])  # type: ignore[arg-type]
        bot.set_running(s, uid, True)
    return sim, {"user": uid, "accounts": ids, "link": (link.token, secret)}


@pytest.fixture
def fleet(database_url: str, redis_url: str, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest):
    sim, world = _fleet(tmp_path, monkeypatch, getattr(request, "param", 10))
    world["sim"] = sim
    yield world
    sim.stop()


def _post(world: dict, **fields: object) -> int:
    token, secret = world["link"]
    body = {"secret": secret, "action": "buy", "symbol": "NIFTY", "option": "CE",
            "strike": "ATM", "lots": 1, **fields}
    resp = TestClient(build_api()).post(f"/webhook/{token}", content=json.dumps(body))
    assert resp.status_code == 202, resp.text
    return resp.json()["alert_id"]


def _fault(sim: ServerThread, **spec: object) -> None:
    httpx.post(f"{sim.base_url}/sim/faults", json=spec).raise_for_status()


def _warm(world: dict) -> None:
    """Every account logged in, the instrument index loaded: what the pre-open does."""
    alert_id = _post(world, id="warm")
    entry.handle_alert(alert_id)
    with session_scope() as s:
        assert len(s.exec(select(Order).where(Order.alert_id == alert_id)).all()) == len(
            world["accounts"])
    # The warm entries are finished (as the order-update stream would) and become positions:
    # while one is working, the next entry on that account is ignored.
    for a in world["accounts"]:
        _follow(world, a)
    # Their positions would make the next entry "already open": close them out of the way.
    with session_scope() as s:
        for p in s.exec(select(Position)).all():
            p.status = "CLOSED"
            s.add(p)


def _orders(alert_id: int) -> list[Order]:
    with session_scope() as s:
        return list(s.exec(select(Order).where(Order.alert_id == alert_id)
                           .order_by(col(Order.id))).all())


def _follow(world: dict, account_id: int) -> None:
    """One follower round for the account, once its market orders have filled at the
    simulator (as the order-update stream would report them)."""
    _market_filled_at_sim(world["sim"])
    follower.follow_account(world["user"], account_id)


def _spread_ms(orders: list[Order]) -> float:
    times = sorted(o.created_at for o in orders)
    return (times[-1] - times[0]) / timedelta(milliseconds=1)


@pytest.mark.parametrize("fleet", [10], indirect=True)
def test_ten_accounts_at_angels_pace_are_sent_at_once_and_each_exactly_once(fleet: dict) -> None:
    _warm(fleet)
    _fault(fleet["sim"], route="placeOrder", kind="latency", ms=150)
    alert_id = _post(fleet, id="go")
    entry.handle_alert(alert_id)
    orders = _orders(alert_id)
    assert len(orders) == 10 and len({o.account_id for o in orders}) == 10
    with session_scope() as s:
        received = s.get(Alert, alert_id).received_at  # type: ignore[union-attr]
    # Served one after another they would be >= 9 x 150 ms apart.
    assert _spread_ms(orders) < 100, _spread_ms(orders)
    last = max(o.created_at for o in orders)
    assert (last - received) / timedelta(milliseconds=1) < 1000
    # Every order's ordertag is derived from alert + account: one each, never resent.
    assert sorted(o.client_order_id for o in orders) == sorted(
        f"A{alert_id}E{a}" for a in fleet["accounts"])
    for user_id, account_id in {(o.user_id, o.account_id) for o in orders}:
        _follow({**fleet, "user": user_id}, account_id)  # type: ignore[arg-type]
    orders = _orders(alert_id)
    assert all(o.status == "FILLED" for o in orders), [o.status for o in orders]
    with session_scope() as s:
        assert s.get(Alert, alert_id).status == "DONE"  # type: ignore[union-attr]
        targets = s.exec(select(AlertTarget).where(AlertTarget.alert_id == alert_id)).all()
    assert {t.outcome for t in targets} == {"ORDERED"} and len(targets) == 10


@pytest.mark.parametrize("fleet", [10], indirect=True)
def test_a_lost_answer_and_a_rate_limit_stay_with_their_accounts(fleet: dict) -> None:
    _warm(fleet)
    sim = fleet["sim"]
    _fault(sim, route="placeOrder", kind="latency", ms=150)
    # Account 3's order is placed but its answer never arrives; account 7 is refused once
    # for exceeding the access rate (Angel did not process it).
    _fault(sim, route="placeOrder", kind="lost_answer", ms=20000, client=_client(3), times=1)
    _fault(sim, route="placeOrder", kind="rate_limit", client=_client(7), times=1)
    alert_id = _post(fleet, id="faulty")
    entry.handle_alert(alert_id)
    orders = {o.account_id: o for o in _orders(alert_id)}
    lost, limited = fleet["accounts"][3], fleet["accounts"][7]
    others = [o for a, o in orders.items() if a not in (lost, limited)]
    assert len(others) == 8 and _spread_ms(others) < 100  # on time, whatever 3 and 7 did
    for a in fleet["accounts"]:
        _follow(fleet, a)
    orders = {o.account_id: o for o in _orders(alert_id)}
    assert all(o.status == "FILLED" for o in orders.values()), {
        a: (o.status, o.reason) for a, o in orders.items()}
    # The lost answer was found in the book, not sent again; the refused one was retried.
    book = _book(sim)
    for a in fleet["accounts"]:
        tag = f"A{alert_id}E{a}"
        assert [o["ordertag"] for o in book].count(tag) == 1, tag
    with session_scope() as s:
        found = s.exec(select(AuditEvent.action).where(
            AuditEvent.subject == orders[lost].client_order_id)).all()
    assert "order.reconcile_found" in found


@pytest.mark.parametrize("fleet", [4], indirect=True)
def test_an_accounts_own_limit_cuts_its_share_and_says_why(fleet: dict) -> None:
    with session_scope() as s:
        gate.set_account_limits(s, fleet["user"], fleet["accounts"][1], max_open_positions=0)
        gate.set_limits(s, fleet["user"], max_open_positions=2)  # the user's: 2 of the 3 left
    alert_id = _post(fleet, id="cut")
    entry.handle_alert(alert_id)
    traded = {o.account_id for o in _orders(alert_id)}
    assert traded == {fleet["accounts"][0], fleet["accounts"][2]}
    with session_scope() as s:
        rows = {t.account_id: t for t in s.exec(
            select(AlertTarget).where(AlertTarget.alert_id == alert_id)).all()}
        denied = s.exec(select(AuditEvent).where(AuditEvent.action == "risk.denied")).all()
    assert rows[fleet["accounts"][1]].outcome == "REFUSED"
    assert "account's max open positions reached (0 of 0)" in rows[fleet["accounts"][1]].reason
    assert rows[fleet["accounts"][3]].outcome == "REFUSED"
    assert "max open positions reached (2 of 2)" in rows[fleet["accounts"][3]].reason
    assert {json.loads(e.detail)["account_id"] for e in denied} == {
        fleet["accounts"][1], fleet["accounts"][3]}


def test_follower_lease_one_job_per_account(redis_url: str) -> None:
    conn = redis.Redis.from_url(redis_url)
    assert follower.arm(conn, 1, 42) is True
    assert follower.arm(conn, 1, 42) is False  # one follower per account at a time
    assert follower.arm(conn, 1, 43) is True
    assert conn.exists(follower.dirty_key(42))


@pytest.mark.parametrize("fleet", [3], indirect=True)
def test_an_entry_while_another_is_still_working_is_ignored_per_account(fleet: dict) -> None:
    """At Angel's pace an entry works for a few hundred ms before it is a position: a second
    alert on the link meanwhile must not open a second position on the same account."""
    _warm(fleet)
    first = _post(fleet, id="first")
    entry.handle_alert(first)  # its orders are working: no position yet
    with session_scope() as s:
        assert s.exec(select(Position).where(Position.status == "OPEN")).all() == []
    second = _post(fleet, id="second")
    entry.handle_alert(second)
    assert _orders(second) == []
    with session_scope() as s:
        rows = s.exec(select(AlertTarget).where(AlertTarget.alert_id == second)).all()
    assert {t.account_id for t in rows} == set(fleet["accounts"])
    assert {t.outcome for t in rows} == {"IGNORED"}
    assert all(f"still on its way to a fill (alert #{first})" in (t.reason or "") for t in rows)
    for a in fleet["accounts"]:
        _follow(fleet, a)
    with session_scope() as s:
        held = s.exec(select(Position.account_id).where(Position.status == "OPEN")).all()
    assert sorted(held) == sorted(fleet["accounts"])  # one position each, from the first


def _waiting_on(fleet: dict, status: str, orders: list[Order]) -> int:
    """An exit alert as its job left it: `status`, its accounts' rows ORDERED on `orders`
    (the first exit's sells it found the positions already selling)."""
    waiting = _post(fleet, id="waiting")
    with session_scope() as s:
        alert = s.get(Alert, waiting)
        alert.status = status  # type: ignore[union-attr]
        s.add(alert)
        for o in orders:
            s.add(AlertTarget(alert_id=waiting, user_id=fleet["user"], account_id=o.account_id,
                              account_key=o.account_id or 0, outcome="ORDERED",
                              order_id=o.id))
    return waiting


@pytest.mark.parametrize("fleet", [2], indirect=True)
def test_a_finished_order_settles_every_alert_waiting_on_it(fleet: dict) -> None:
    """An exit alert that finds the position already exiting waits on the first exit's
    sell: when that order finishes, both alerts get their verdict."""
    _warm(fleet)
    first = _post(fleet, id="first")
    entry.handle_alert(first)
    waiting = _waiting_on(fleet, "PLACED", _orders(first))
    for a in fleet["accounts"]:
        _follow(fleet, a)
    with session_scope() as s:
        assert s.get(Alert, first).status == "DONE"  # type: ignore[union-attr]
        assert s.get(Alert, waiting).status == "DONE"  # type: ignore[union-attr]


@pytest.mark.parametrize("fleet", [2], indirect=True)
def test_a_finished_order_leaves_an_alert_its_job_still_writes(fleet: dict) -> None:
    """An exit alert's accounts run in threads, each committing its own outcome row: while
    the job is still PROCESSING, the first account's fill must not give the alert its
    verdict from the rows so far (it did: DONE with the second account's row missing, and a
    worker killed then left that account's exit never done, the retry finding the alert
    final). The job's own settle, with every row written, gives it."""
    _warm(fleet)
    first = _post(fleet, id="first")
    entry.handle_alert(first)
    one = _orders(first)[0]
    waiting = _waiting_on(fleet, "PROCESSING", [one])
    for a in fleet["accounts"]:
        _follow(fleet, a)
    with session_scope() as s:
        assert s.get(Alert, first).status == "DONE"  # type: ignore[union-attr]
        assert s.get(Alert, waiting).status == "PROCESSING"  # type: ignore[union-attr]
    assert recovery.settle_placed() == []  # the backstop leaves a PROCESSING alert too
    other = next(o for o in _orders(first) if o.account_id != one.account_id)
    with session_scope() as s:
        s.add(AlertTarget(alert_id=waiting, user_id=fleet["user"], account_id=other.account_id,
                          account_key=other.account_id or 0, outcome="IGNORED",
                          reason="no open position to exit"))
    assert verdict.settle(waiting, by_job=True) == "DONE"


@pytest.mark.parametrize("fleet", [2], indirect=True)
def test_one_accounts_slow_answer_never_holds_the_users_other_alerts(fleet: dict) -> None:
    """Two links of one user, one account each, alerts at the same instant, placeOrder
    answering 1.5 s late: the user's risk lock covers the check and the SUBMITTING rows,
    not the broker's answer, so the second order is written without waiting for the first's
    (held across the call, the rows would be >= 1.5 s apart; the margin is wide so that a
    busy machine cannot make the one look like the other)."""
    _warm(fleet)
    with session_scope() as s:
        links = [webhooks.create_link(
            s, fleet["user"], name=f"solo{i}", strategy_id=None, stop_loss_pct=5,
            target_pct=10, trailing_stop_pct=None, paper=False,
            accounts=[webhooks.LinkAccount(a, 1)]) for i, a in enumerate(fleet["accounts"])]
        solo = [{**fleet, "link": (link.token, secret)} for link, secret in links]
    _fault(fleet["sim"], route="placeOrder", kind="latency", ms=1500)
    ids = [_post(w, id=f"solo{i}") for i, w in enumerate(solo)]
    threads = [threading.Thread(target=entry.handle_alert, args=(a,)) for a in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    orders = [o for a in ids for o in _orders(a)]
    assert len(orders) == 2 and all(o.broker_order_id for o in orders), orders
    assert _spread_ms(orders) < 1000, _spread_ms(orders)


@pytest.mark.parametrize("fleet", [10], indirect=True)
def test_an_exit_alert_sells_on_every_account_at_once(fleet: dict) -> None:
    """A sell alert on a link of ten accounts, placeOrder answering 150 ms late: the ten
    sells are sent side by side (one after another their rows would be >= 9 x 150 ms
    apart; each account's claim and row are commits of their own, so SQLite's one writer
    spaces them a little), each exactly once, and every position closes."""
    _warm(fleet)
    opened = _post(fleet, id="open")
    entry.handle_alert(opened)
    for a in fleet["accounts"]:
        _follow(fleet, a)
    with session_scope() as s:
        held = s.exec(select(Position.id).where(Position.status == "OPEN")).all()
    assert len(held) == 10
    _fault(fleet["sim"], route="placeOrder", kind="latency", ms=150)
    sold = _post(fleet, action="sell", id="close")
    entry.handle_alert(sold)
    orders = _orders(sold)
    assert len(orders) == 10 and {o.side for o in orders} == {"SELL"}
    assert sorted(o.position_id for o in orders) == sorted(held)  # type: ignore[type-var]
    assert _spread_ms(orders) < 600, _spread_ms(orders)
    for a in fleet["accounts"]:
        _follow(fleet, a)
    with session_scope() as s:
        statuses = s.exec(select(Position.status).where(col(Position.id).in_(held))).all()
        assert s.get(Alert, sold).status == "DONE"  # type: ignore[union-attr]
    assert set(statuses) == {"CLOSED"}
    assert sorted(o.client_order_id for o in _book_orders(fleet["sim"], "SELL")) == sorted(
        o.client_order_id for o in orders)


def _book_orders(sim: ServerThread, side: str) -> list[Order]:
    return [Order(client_order_id=row["ordertag"]) for row in _book(sim)
            if row["transactiontype"] == side]


@pytest.mark.parametrize("fleet", [2], indirect=True)
def test_recovery_gives_a_placed_alert_its_verdict_once_every_order_is_final(
        fleet: dict, redis_url: str) -> None:
    """The backstop: an alert left PLACED although every order it waits on is final (a
    verdict check that slipped between two finishing orders) is settled by the recovery
    round; one whose order still works stays PLACED."""
    _warm(fleet)
    done = _post(fleet, id="done")
    entry.handle_alert(done)
    for a in fleet["accounts"]:
        _follow(fleet, a)
    working = _post(fleet, id="working", action="sell")
    entry.handle_alert(working)  # its sells are left working
    with session_scope() as s:
        for a in (done, working):
            alert = s.get(Alert, a)
            alert.status = "PLACED"  # type: ignore[union-attr]
            s.add(alert)
    assert recovery.requeue_lost_alerts(redis.Redis.from_url(redis_url)) == []
    with session_scope() as s:
        assert s.get(Alert, done).status == "DONE"  # type: ignore[union-attr]
        assert s.get(Alert, working).status == "PLACED"  # type: ignore[union-attr]


@pytest.mark.parametrize("fleet", [1], indirect=True)
def test_a_young_submitting_order_is_left_to_its_sender_not_looked_up(
        fleet: dict, redis_url: str) -> None:
    """Two exits of one position at once (the monitor's stop and a sell alert) meet at one
    SUBMITTING row while its broker call is in flight in the other job. Driving it as
    though its sender had died looked it up before Angel had it (three tries over ~3 s),
    marked it not in the book and reopened the position for a second sell. The row is
    left to its sender until it answers: here 6 s later, past the look-up's tries."""
    _warm(fleet)
    account = fleet["accounts"][0]
    conn = redis.Redis.from_url(redis_url)
    with session_scope() as s:
        broker = broker_for(s, fleet["user"], account, paper=False, redis=conn)
        won = _orders(_post_and_run(fleet, "template"))[0]
        order = submit.write_submitting(s, Order(
            user_id=fleet["user"], account_id=account, client_order_id="INFLIGHT1",
            purpose="ENTRY", exchange=won.exchange, symbol=won.symbol,
            symbol_token=won.symbol_token, side="BUY", quantity=won.quantity, paper=False))
    request = submit.request_for(order, Decimal("0.05"))

    def sender() -> None:  # the other job: its call answers late
        time.sleep(6.0)
        placed = submit.place(broker_for_thread(), request)
        with submit.job_session() as own:
            submit.apply_placement(own, order.id, placed)  # type: ignore[arg-type]

    def broker_for_thread() -> object:
        with session_scope() as s:
            return broker_for(s, fleet["user"], account, paper=False, redis=conn)

    other = threading.Thread(target=sender)
    other.start()
    driven = submit.drive(order.id, broker, request)  # type: ignore[arg-type]
    other.join(30)
    assert driven.status != "FAILED" and driven.broker_order_id, driven
    assert [o["ordertag"] for o in _book(fleet["sim"])].count("INFLIGHT1") == 1


def _post_and_run(world: dict, tag: str) -> int:
    alert_id = _post(world, id=tag)
    entry.handle_alert(alert_id)
    return alert_id
