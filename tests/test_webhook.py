"""POST /webhook/{token}: every answer the route gives, against real databases and Redis."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import redis
from rq import Queue
from sqlmodel import select
from starlette.testclient import TestClient

from ats_app.api import build_api
from ats_app.engine.core.config import reset_settings_cache
from ats_app.engine.execution.recovery import requeue_lost_alerts
from ats_app.engine.intake import alerts
from ats_app.engine.risk import bot
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Alert, AuditEvent
from ats_app.engine.store.redis_conn import ALERTS_QUEUE
from ats_app.engine.tenants import strategies, users, webhooks


@pytest.fixture
def link(database_url: str, redis_url: str) -> dict:
    with session_scope() as s:
        uid = users.create_user(s, "trader", "password123", "T", "R").id
        strat = strategies.create_strategy(s, uid, "ORB")
        view, secret = webhooks.create_link(
            s,
            uid,
            name="nifty",
            accounts=[],
            strategy_id=strat.id,
            stop_loss_pct=1,
            target_pct=2,
            trailing_stop_pct=None,
            paper=True,
        )
        bot.set_running(s, uid, True)
    return {"user_id": uid, "token": view.token, "secret": secret, "id": view.id}


@pytest.fixture
def client() -> TestClient:
    return TestClient(build_api())


def _alert(link: dict, **fields: object) -> dict:
    return {
        "secret": link["secret"],
        "action": "buy",
        "symbol": "NIFTY",
        "option": "CE",
        "strike": "ATM",
        "lots": "1",
        **fields,
    }


@pytest.fixture
def one_rate_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """The limit counts per clock minute: a test that straddled a minute's end would see its
    count restart. Pinned to one window (the counting itself is the real code)."""
    monkeypatch.setattr(alerts, "_rate_key", lambda link_id: f"ats:rl:webhook:{link_id}:test")


def _post(client: TestClient, link: dict, body: object, token: str | None = None):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(f"/webhook/{token or link['token']}", content=data)


def _audit(action: str) -> list[AuditEvent]:
    with session_scope() as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def _alerts() -> list[Alert]:
    with session_scope() as s:
        return list(s.exec(select(Alert)).all())


def test_accepted_alert_is_stored_and_enqueued(
    client: TestClient, link: dict, redis_url: str
) -> None:
    resp = _post(client, link, _alert(link, id="sig-1"))
    assert resp.status_code == 202
    body = resp.json()
    assert body["status"] == "accepted" and isinstance(body["alert_id"], int)
    (alert,) = _alerts()
    assert alert.id == body["alert_id"] and alert.status == "ACCEPTED"
    assert link["secret"] not in alert.payload  # the secret is never stored
    job_ids = Queue(ALERTS_QUEUE, connection=redis.Redis.from_url(redis_url)).job_ids
    assert job_ids == [f"alert-{alert.id}"]


def test_an_accepted_alert_is_answered_before_its_job_is_enqueued(
    link: dict, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The route answers once the alert's row is committed: the job's enqueue (a Redis round
    trip) finishes after the answer is on its way, and is not dropped."""
    from ats_app import api

    answered = threading.Event()
    order: list[str] = []
    enqueue = alerts.enqueue_alert

    def enqueue_once_answered(alert_id: int, conn: redis.Redis, **kw: object) -> None:
        order.append("answered first" if answered.wait(10) else "enqueued first")
        enqueue(alert_id, conn, **kw)

    monkeypatch.setattr(alerts, "enqueue_alert", enqueue_once_answered)

    async def post() -> alerts.Reply:
        reply = await api._receive(link["token"], json.dumps(_alert(link, id="e1")).encode(),
                                   "127.0.0.1")
        answered.set()
        return reply

    reply = asyncio.run(post())  # returns once the enqueue's thread is done too
    assert reply.status_code == 202
    assert order == ["answered first"]
    job_ids = Queue(ALERTS_QUEUE, connection=redis.Redis.from_url(redis_url)).job_ids
    assert job_ids == [f"alert-{reply.body['alert_id']}"]


def test_a_failure_after_the_answer_is_logged_and_recovery_enqueues_the_alert(
    link: dict, redis_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The 202 already went out when the enqueue breaks (not a Redis error: a bug): the error
    is logged, not dropped with the task, and the committed alert is recovered."""
    from ats_app import api

    def broken(alert_id: int, conn: redis.Redis, **kw: object) -> None:
        raise RuntimeError("enqueue broke")

    monkeypatch.setattr(alerts, "enqueue_alert", broken)

    async def post() -> alerts.Reply:
        reply = await api._receive(link["token"], json.dumps(_alert(link, id="e2")).encode(),
                                   "127.0.0.1")
        while api._running:  # the receive still running after its answer
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)  # its done-callbacks
        return reply

    with caplog.at_level(logging.ERROR, logger="ats.api"):
        reply = asyncio.run(post())
    assert reply.status_code == 202
    (record,) = [r for r in caplog.records if r.name == "ats.api"]
    assert "after the answer" in record.getMessage() and record.exc_info is not None
    assert str(record.exc_info[1]) == "enqueue broke"
    assert requeue_lost_alerts(redis.Redis.from_url(redis_url)) == [reply.body["alert_id"]]


@pytest.mark.parametrize(
    "body,status,field",
    [
        pytest.param(b"buy NIFTY now", 400, None, id="plain-text"),
        pytest.param(b"[1, 2]", 400, None, id="json-array"),
        pytest.param({"action": "buy", "symbol": "NIFTY"}, 401, None, id="missing-secret"),
        pytest.param(
            {"secret": "wrong", "action": "buy", "symbol": "NIFTY"}, 401, None, id="wrong-secret"
        ),
        pytest.param("ALERT", 422, "action", id="missing-action"),
        pytest.param({"action": "hold"}, 422, "action", id="bad-action"),
        pytest.param({"qty": 5}, 422, "qty", id="unknown-field"),
        pytest.param({"lots": 2, "quantity": 150}, 422, "quantity", id="lots-and-quantity"),
        pytest.param({"lots": "1.5"}, 422, "lots", id="fractional-lots"),
        pytest.param({"strike": "XTM"}, 422, "strike", id="bad-strike"),
        pytest.param({"option": "XX"}, 422, "option", id="bad-option"),
        pytest.param({"price": "-3"}, 422, "price", id="negative-price"),
        pytest.param(
            {"tradingsymbol": "NIFTY26DEC26000CE"}, 422, "exchange", id="symbol-no-exchange"
        ),
    ],
)
def test_bad_input_is_refused_named_and_audited(
    client: TestClient, link: dict, body: object, status: int, field: str | None
) -> None:
    if body == "ALERT":
        body = {"secret": link["secret"], "symbol": "NIFTY"}
    elif isinstance(body, dict) and status == 422:
        body = _alert(link, **body)
    resp = _post(client, link, body)
    assert resp.status_code == status, resp.text
    assert resp.json()["status"] == "error" and resp.json()["error"]
    if field:
        assert resp.json()["field"] == field and field in resp.json()["error"]
    assert _alerts() == []
    refused = _audit("webhook.refused")
    assert len(refused) == 1 and f'"status": {status}' in refused[0].detail


def test_unknown_token_is_404(client: TestClient, link: dict) -> None:
    resp = _post(client, link, _alert(link), token="not-a-real-token-at-all")
    assert resp.status_code == 404 and _alerts() == []
    assert len(_audit("webhook.refused")) == 1


def test_rotated_token_answers_404(client: TestClient, link: dict) -> None:
    with session_scope() as s:
        new = webhooks.rotate_token(s, link["user_id"], link["id"])
    assert _post(client, link, _alert(link)).status_code == 404
    assert _post(client, link, _alert(link), token=new.token).status_code == 202


def test_oversized_body_is_413(client: TestClient, link: dict) -> None:
    resp = _post(client, link, _alert(link, id="x" * 20_000))
    assert resp.status_code == 413 and _alerts() == []


@pytest.mark.usefixtures("one_rate_window")
def test_rate_limit_per_link_is_429(
    client: TestClient, link: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_RATE_PER_MIN", "3")
    reset_settings_cache()
    codes = [_post(client, link, _alert(link, id=f"r{i}")).status_code for i in range(5)]
    assert codes == [202, 202, 202, 429, 429]
    assert len(_alerts()) == 3


def test_duplicate_alert_returns_the_first_id(client: TestClient, link: dict) -> None:
    first = _post(client, link, _alert(link, id="tv-42")).json()
    again = _post(client, link, _alert(link, id="tv-42"))
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "alert_id": first["alert_id"]}
    assert len(_alerts()) == 1


def test_identical_bodies_without_id_are_duplicates(client: TestClient, link: dict) -> None:
    a = _post(client, link, _alert(link)).json()
    b = _post(client, link, _alert(link)).json()
    assert b == {"status": "duplicate", "alert_id": a["alert_id"]}


def test_fifty_concurrent_copies_make_one_alert(client: TestClient, link: dict) -> None:
    body = json.dumps(_alert(link, id="burst-1"))
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: _post(client, link, body), range(50)))
    statuses = sorted(r.json()["status"] for r in answers)
    assert statuses.count("accepted") == 1 and statuses.count("duplicate") == 49
    assert len({r.json()["alert_id"] for r in answers}) == 1
    assert len(_alerts()) == 1


def test_refusals_are_recorded_after_the_ack_gives_its_connection_back(
    client: TestClient, link: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Recording a refusal takes a connection of its own. Taken while the ack still held its
    # session's, a burst of 16 duplicates held all 15 of the pool's and waited 30 s for more.
    from ats_app.engine.notify import notices as notify
    from ats_app.engine.store import audit
    from ats_app.engine.store.db import get_engine

    held: list[int] = []
    record_now, emit = audit.record_now, notify.emit

    def spy(fn):
        def wrapped(*args, **kwargs):
            held.append(get_engine().pool.checkedout())
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(alerts.audit, "record_now", spy(record_now))
    monkeypatch.setattr(alerts.refusals, "record", spy(alerts.refusals.record))  # a link's own
    monkeypatch.setattr(notify, "emit", spy(emit))
    assert _post(client, link, _alert(link, id="dup-c")).status_code == 202
    assert _post(client, link, _alert(link, id="dup-c")).status_code == 200  # duplicate
    assert _post(client, link, {"secret": "nope", "action": "buy"}).status_code == 401
    assert _post(client, link, _alert(link, lots="x")).status_code == 422  # and its notice
    assert _post(client, link, _alert(link), token="not-a-real-token-at-all").status_code == 404
    assert len(held) == 5 and held == [0] * 5, held


def test_bot_stopped_is_ignored_and_not_enqueued(
    client: TestClient, link: dict, redis_url: str
) -> None:
    with session_scope() as s:
        bot.set_running(s, link["user_id"], False)
    resp = _post(client, link, _alert(link))
    assert resp.status_code == 200
    assert resp.json()["status"] == "ignored" and resp.json()["reason"] == "bot_stopped"
    (alert,) = _alerts()
    assert alert.status == "IGNORED"
    assert Queue(ALERTS_QUEUE, connection=redis.Redis.from_url(redis_url)).count == 0


def test_stale_entry_refused_but_stale_exit_accepted(client: TestClient, link: dict) -> None:
    old = (datetime.now(UTC) - timedelta(minutes=10)).isoformat().replace("+00:00", "Z")
    resp = _post(client, link, _alert(link, time=old))
    assert resp.status_code == 422 and resp.json()["field"] == "time"
    assert "stale" in resp.json()["error"]
    exit_alert = {"secret": link["secret"], "action": "exit", "symbol": "NIFTY", "time": old}
    assert _post(client, link, exit_alert).status_code == 202


def test_source_allowlist(client: TestClient, link: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_IP_ALLOWLIST", "tradingview")
    reset_settings_cache()
    assert _post(client, link, _alert(link)).status_code == 403  # testclient is no TV address
    monkeypatch.setenv("WEBHOOK_IP_ALLOWLIST", "off")
    reset_settings_cache()
    assert _post(client, link, _alert(link)).status_code == 202


def test_alert_accepted_while_redis_down_is_requeued(
    client: TestClient, link: dict, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ats_app.engine.store import redis_conn

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    reset_settings_cache()
    redis_conn.forget_shared()
    resp = _post(client, link, _alert(link, id="during-outage"))
    assert resp.status_code == 202  # persisted first: accepted even though Redis is down
    alert_id = resp.json()["alert_id"]
    conn = redis.Redis.from_url(redis_url)
    assert Queue(ALERTS_QUEUE, connection=conn).count == 0
    assert requeue_lost_alerts(conn) == [alert_id]
    assert Queue(ALERTS_QUEUE, connection=conn).job_ids == [f"alert-{alert_id}"]
    assert requeue_lost_alerts(conn) == []  # its job exists now: not enqueued twice
    redis_conn.forget_shared()


def test_recovery_asks_about_every_pending_alert_in_one_round_trip(
    client: TestClient, link: dict, redis_url: str
) -> None:
    """A backlog of accepted alerts (workers down) is when recovery matters, and asking Redis
    about each job in turn cost thousands of round trips every 30 s; only the lost ones are
    enqueued again."""
    ids = [_post(client, link, _alert(link, id=f"backlog-{i}")).json()["alert_id"]
           for i in range(30)]
    conn = redis.Redis.from_url(redis_url)
    lost = ids[::10]
    for alert_id in lost:  # as if Redis lost them
        conn.delete(f"rq:job:alert-{alert_id}")
        conn.lrem(f"rq:queue:{ALERTS_QUEUE}", 0, f"alert-{alert_id}")
    sent: list[str] = []

    class Counting(redis.Redis):  # counts single commands, each its own round trip
        def execute_command(self, *args: object, **options: object) -> object:
            sent.append(str(args[0]))
            return super().execute_command(*args, **options)

    assert requeue_lost_alerts(Counting.from_url(redis_url)) == lost
    assert "EXISTS" not in sent and len(sent) < 10, sent
    assert sorted(Queue(ALERTS_QUEUE, connection=conn).job_ids) == sorted(
        f"alert-{a}" for a in ids)


def test_refused_alert_tells_its_owner(client: TestClient, link: dict, redis_url: str) -> None:
    from ats_app.engine.notify import targets
    from ats_app.engine.store.redis_conn import NOTIFY_QUEUE

    with session_scope() as s:
        targets.add_target(s, link["user_id"], "json://127.0.0.1:9/hook")
    old = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    assert _post(client, link, _alert(link, time=old)).status_code == 422
    jobs = Queue(NOTIFY_QUEUE, connection=redis.Redis.from_url(redis_url)).jobs
    assert len(jobs) == 1 and jobs[0].args[:2] == (link["user_id"], "alert_refused")
    assert "stale" in jobs[0].args[2]
    # A wrong secret is not the owner's doing: nobody is notified.
    assert _post(client, link, {"secret": "nope", "action": "buy"}).status_code == 401
    assert len(Queue(NOTIFY_QUEUE, connection=redis.Redis.from_url(redis_url)).jobs) == 1


def test_order_export_streams_through_a_one_time_link(client: TestClient, link: dict,
                                                      redis_url: str) -> None:
    import csv
    import io

    from ats_app.engine.execution import order_history as orders
    from ats_app.engine.store import downloads
    from ats_app.engine.store.models import Order

    with session_scope() as s:
        for i in range(1203):  # more than two pages of the export's reader
            s.add(Order(user_id=link["user_id"], client_order_id=f"X{i}", exchange="NFO",
                        symbol="NIFTY" if i % 2 else "BANKNIFTY", symbol_token="1",
                        side="BUY", quantity=65, status="FILLED"))
    conn = redis.Redis.from_url(redis_url)
    token = downloads.issue(conn, link["user_id"], "orders",
                            {"format": "csv", "symbol": "BANKNIFTY"})
    resp = client.get(f"/download/{token}")
    assert resp.status_code == 200 and "attachment" in resp.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert len(rows) == 602 and {r["tradingsymbol"] for r in rows} == {"BANKNIFTY"}
    assert client.get(f"/download/{token}").status_code == 404  # one use only
    token = downloads.issue(conn, link["user_id"], "orders", {"format": "json"})
    data = client.get(f"/download/{token}").json()
    assert len(data) == 1203 and len({d["id"] for d in data}) == 1203
    other = downloads.issue(conn, link["user_id"] + 999, "orders", {"format": "json"})
    assert client.get(f"/download/{other}").json() == []  # scoped to the token's user
    assert json.loads(orders.export_orders([], "json")) == []


# --- the ack's link cache (engine.link_cache): fast, and never serving a changed link -----


def test_a_cached_link_costs_the_ack_only_its_inserts(client: TestClient, link: dict) -> None:
    from sqlalchemy import event

    from ats_app.engine.store.db import get_engine

    assert _post(client, link, _alert(link, id="warm")).status_code == 202
    statements: list[str] = []

    def spy(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if not statement.startswith("PRAGMA"):  # SQLite's busy-timeout settings: no I/O
            statements.append(" ".join(statement.split()))

    event.listen(get_engine(), "before_cursor_execute", spy)
    try:
        hot = _post(client, link, _alert(link, id="hot"))
        assert hot.status_code == 202
    finally:
        event.remove(get_engine(), "before_cursor_execute", spy)
    (received,) = [e for e in _audit("alert.received") if e.subject == str(hot.json()["alert_id"])]
    assert json.loads(received.detail) == {"link_id": link["id"], "reason": None,
                                           "status": "ACCEPTED"}
    assert received.user_id == link["user_id"]
    # The alert and its audit record, nothing read: two INSERTs, or one on PostgreSQL.
    assert not any("webhook_links" in st or "bot_state" in st for st in statements)
    if get_engine().dialect.name == "postgresql":
        assert len(statements) == 1 and statements[0].startswith("WITH new_alert AS (INSERT")
    else:
        assert [st.split()[0] for st in statements] == ["INSERT", "INSERT"]


def test_link_changes_reach_the_very_next_alert(client: TestClient, link: dict) -> None:
    uid, lid = link["user_id"], link["id"]
    assert _post(client, link, _alert(link, id="a1")).status_code == 202  # now cached
    with session_scope() as s:
        webhooks.update_link(s, uid, lid, name="nifty", accounts=[], strategy_id=None,
                             stop_loss_pct=1, target_pct=2, trailing_stop_pct=None,
                             paper=True, enabled=False)
    resp = _post(client, link, _alert(link, id="a2"))
    assert resp.json()["status"] == "ignored" and resp.json()["reason"] == "link_disabled"
    with session_scope() as s:
        webhooks.update_link(s, uid, lid, name="nifty", accounts=[], strategy_id=None,
                             stop_loss_pct=1, target_pct=2, trailing_stop_pct=None,
                             paper=True, enabled=True)
        new_secret = webhooks.rotate_secret(s, uid, lid)
    assert _post(client, link, _alert(link, id="a3")).status_code == 401  # the old secret
    assert _post(client, link, _alert(link, id="a4", secret=new_secret)).status_code == 202
    with session_scope() as s:
        webhooks.delete_link(s, uid, lid)
    assert _post(client, link, _alert(link, id="a5", secret=new_secret)).status_code == 404


def test_bot_stopped_from_another_process_reaches_the_next_alert(
    client: TestClient, link: dict
) -> None:
    import subprocess
    import sys

    assert _post(client, link, _alert(link, id="b1")).status_code == 202  # now cached
    subprocess.run([sys.executable, "-m", "ats_app.cli", "bot", "stop", "--user", "trader"],
                   check=True, capture_output=True)
    resp = _post(client, link, _alert(link, id="b2"))
    assert resp.json() == {"status": "ignored", "reason": "bot_stopped",
                           "alert_id": resp.json()["alert_id"]}


def test_a_lost_invalidation_expires_within_the_cache_age(
    client: TestClient, link: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from ats_app.engine.store import generation

    def unreachable(_conn: object) -> None:
        raise redis.ConnectionError("Redis unreachable just then")

    # Long while c1 is cached and c2 served (a slow runner cannot expire it early), then short.
    monkeypatch.setattr(alerts._links, "max_age_s", 60.0)
    assert _post(client, link, _alert(link, id="c1")).status_code == 202  # now cached
    monkeypatch.setattr(generation, "bump", unreachable)
    with session_scope() as s:
        bot.set_running(s, link["user_id"], False)  # committed; its invalidation is lost
    assert _post(client, link, _alert(link, id="c2")).status_code == 202  # served stale...
    monkeypatch.setattr(alerts._links, "max_age_s", 0.5)
    time.sleep(0.6)
    resp = _post(client, link, _alert(link, id="c3"))  # ...for at most max_age_s
    assert resp.json()["status"] == "ignored" and resp.json()["reason"] == "bot_stopped"


@pytest.mark.usefixtures("one_rate_window")
def test_the_rate_limit_holds_for_alerts_arriving_together(
    client: TestClient, link: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_RATE_PER_MIN", "3")
    reset_settings_cache()
    assert _post(client, link, _alert(link, id="first")).status_code == 202  # link cached
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: _post(client, link, _alert(link, id=f"t{i}"))
                              .status_code, range(10)))
    assert sorted(codes) == [202, 202] + [429] * 8  # 3 in the minute, however they arrive
    assert len(_alerts()) == 3


@pytest.mark.usefixtures("one_rate_window")
def test_requests_that_are_not_the_owners_do_not_use_up_the_limit(
    client: TestClient, link: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_RATE_PER_MIN", "2")
    reset_settings_cache()
    for _ in range(5):
        assert _post(client, link, {"secret": "guess", "action": "buy"}).status_code == 401
    assert _post(client, link, b"not json").status_code == 400
    codes = [_post(client, link, _alert(link, id=f"o{i}")).status_code for i in range(3)]
    assert codes == [202, 202, 429]


def test_the_generation_changes_before_a_link_change_is_committed(
    link: dict, redis_url: str
) -> None:
    from sqlalchemy import event

    from ats_app.engine.intake.link_cache import GEN_KEY
    from ats_app.engine.store.db import get_engine

    conn = redis.Redis.from_url(redis_url)
    before = conn.get(GEN_KEY)
    at_commit: list[bytes | None] = []

    def on_commit(_conn) -> None:  # type: ignore[no-untyped-def]
        at_commit.append(conn.get(GEN_KEY))

    event.listen(get_engine(), "commit", on_commit)
    try:
        with session_scope() as s:
            bot.set_running(s, link["user_id"], False)
    finally:
        event.remove(get_engine(), "commit", on_commit)
    # No request can cache the running bot under the generation current at the commit...
    assert at_commit and at_commit[-1] != before
    # ...and the one after the commit retires whatever was cached meanwhile.
    assert conn.get(GEN_KEY) not in (before, at_commit[-1])


# --- hostile bodies: each refused with its reason, audited, and never a 500 ----------------


@pytest.mark.parametrize("body", [
    pytest.param(b"[" * 5000 + b"]" * 5000, id="arrays"),
    pytest.param(b'{"":' * 3000 + b"1" + b"}" * 3000, id="objects"),  # under the size limit
    pytest.param(b'{"action": "buy", "strike": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                 id="inside-an-alert"),
])
def test_deeply_nested_body_is_400_and_audited(
    client: TestClient, link: dict, body: bytes
) -> None:
    resp = _post(client, link, body)
    assert resp.status_code == 400, resp.text
    assert "nested" in resp.json()["error"]
    assert _alerts() == []
    (refused,) = _audit("webhook.refused")
    assert '"status": 400' in refused.detail and "nested" in refused.detail


@pytest.mark.parametrize("template,key", [
    pytest.param('{{"secret": "{s}", "secret": "{s}", "action": "buy", "symbol": "NIFTY"}}',
                 "secret", id="secret-twice"),
    pytest.param('{{"secret": "{s}", "action": "buy", "action": "sell", "symbol": "NIFTY"}}',
                 "action", id="buy-then-sell"),
    pytest.param('{{"secret": "{s}", "Action": "buy", "action": "sell", "symbol": "NIFTY"}}',
                 "action", id="differing-only-in-case"),
    pytest.param('{{"secret": "{s}", "action": "buy", "symbol": "NIFTY", '
                 '"strike": {{"n": 1, "n": 2}}}}', "n", id="nested"),
])
def test_a_repeated_key_is_422_naming_it(
    client: TestClient, link: dict, template: str, key: str
) -> None:
    # JSON keeps the last of a repeated key silently: which one trades must not be a guess.
    resp = _post(client, link, template.format(s=link["secret"]))
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == key and "duplicate key" in resp.json()["error"]
    assert _alerts() == []
    (refused,) = _audit("webhook.refused")
    assert '"status": 422' in refused.detail and f'"field": "{key}"' in refused.detail


@pytest.mark.parametrize("action,when", [
    pytest.param("buy", "2099-01-01T00:00:00Z", id="2099"),
    pytest.param("buy", "+120s", id="two-minutes-ahead"),
    pytest.param("exit", "2099-01-01T00:00:00Z", id="exit-in-2099"),
    pytest.param("buy", 4_070_908_800_000, id="epoch-ms-2099"),
])
def test_a_time_in_the_future_is_422(
    client: TestClient, link: dict, action: str, when: object
) -> None:
    # A future time would also have passed the staleness check of an entry, forever.
    if when == "+120s":
        when = (datetime.now(UTC) + timedelta(seconds=120)).isoformat()
    resp = _post(client, link, _alert(link, action=action, time=when))
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == "time" and "in the future" in resp.json()["error"]
    assert _alerts() == []
    assert len(_audit("webhook.refused")) == 1


def test_a_time_within_the_clock_skew_is_accepted(client: TestClient, link: dict) -> None:
    ahead = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    assert _post(client, link, _alert(link, time=ahead)).status_code == 202


@pytest.mark.parametrize("when", ["nan", "inf", "1e400", 1e30, -1e30])
def test_a_time_that_is_no_moment_is_422(client: TestClient, link: dict, when: object) -> None:
    resp = _post(client, link, _alert(link, time=when))
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == "time" and _alerts() == []


@pytest.fixture
def live_server(link: dict) -> Iterator[tuple[str, int]]:
    """The webhook app under uvicorn in a thread, on a free port: a real socket to stall."""
    import uvicorn

    from ats_app.engine.services.embedded_redis import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_api(), host="127.0.0.1", port=port,
                                           lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    yield "127.0.0.1", port
    server.should_exit = True
    thread.join(10)


def test_a_body_short_of_its_content_length_is_408_within_the_timeout(
    live_server: tuple[str, int], link: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 100 bytes declared, 9 sent: without a limit the connection hung with no answer for as
    # long as the sender liked. TradingView gives up after ~3 s, so the limit is a few seconds.
    from ats_app import api

    assert 3 <= api.BODY_TIMEOUT_S <= 10
    monkeypatch.setattr(api, "BODY_TIMEOUT_S", 0.5)  # the same mechanism, a fast test
    with socket.create_connection(live_server, timeout=10) as sock:
        sock.sendall(f"POST /webhook/{link['token']} HTTP/1.1\r\nHost: x\r\n"
                     "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                     '{"secret"'.encode())
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(65536):  # until the server closes the connection
            answer += chunk
        waited = time.monotonic() - started
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer
    assert 0.4 < waited < 3, waited
    assert "within 0.5 s" in json.loads(body)["error"]
    assert _alerts() == []
    (refused,) = _audit("webhook.refused")
    assert refused.user_id == link["user_id"] and '"status": 408' in refused.detail


def _ist_today() -> datetime:
    from ats_app.engine.market.instruments import IST

    return datetime.now(IST)


@pytest.mark.parametrize("fields,field", [
    pytest.param({"symbol": "NIFTY\x00"}, "symbol", id="nul-in-symbol"),
    pytest.param({"id": "sig\x1b[2J"}, "id", id="escape-in-id"),
    pytest.param({"tradingsymbol": "NIFTY\x7f", "exchange": "NFO"}, "tradingsymbol",
                 id="del-in-tradingsymbol"),
    pytest.param({"strike": "OTM\u0085 1"}, "strike", id="c1-in-strike"),
    pytest.param({"strike": "OTM999"}, "strike", id="otm999"),
    pytest.param({"strike": "ITM501"}, "strike", id="itm501"),
    pytest.param({"strike": "OTM" + "9" * 5000}, "strike", id="5000-digit-offset"),
    pytest.param({"strike": "1e999999"}, "strike", id="strike-1e999999"),
    pytest.param({"expiry": "1999-12-30"}, "expiry", id="expiry-1999"),
    pytest.param({"expiry": "yesterday"}, "expiry", id="expiry-yesterday"),
    pytest.param({"lots": "sNaN"}, "lots", id="lots-snan"),
])
def test_hostile_field_values_are_422_naming_the_field(
    client: TestClient, link: dict, fields: dict, field: str
) -> None:
    # Each was a 202 that failed only inside the job, or a 500 (5,000 digits, 1e999999, sNaN).
    if fields.get("expiry") == "yesterday":
        fields = {"expiry": (_ist_today() - timedelta(days=1)).date().isoformat()}
    resp = _post(client, link, _alert(link, **fields))
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == field and field in resp.json()["error"]
    assert _alerts() == []
    (refused,) = _audit("webhook.refused")
    assert '"status": 422' in refused.detail


@pytest.mark.parametrize("fields", [
    pytest.param({"symbol": " NIFTY\n", "id": "a\t"}, id="surrounding-whitespace"),
    pytest.param({"strike": "OTM500"}, id="otm500"),
    pytest.param({"strike": "26000"}, id="a-strike-price"),
    pytest.param({"expiry": "today"}, id="expiry-today"),
])
def test_the_edges_of_those_limits_are_accepted(
    client: TestClient, link: dict, fields: dict
) -> None:
    if fields.get("expiry") == "today":
        fields = {"expiry": _ist_today().date().isoformat()}  # trades until the close
    assert _post(client, link, _alert(link, **fields)).status_code == 202


@pytest.mark.parametrize("fragment", [
    pytest.param('"secret": "\\ud800"', id="in-the-secret"),  # before any secret is known
    pytest.param('"secret": "{s}", "action": "buy", "symbol": "NIFTY", "id": "\\udfff"',
                 id="in-a-value"),
    pytest.param('"secret": "{s}", "action": "buy", "symbol": "NIFTY", "\\ud83d": 1',
                 id="in-a-key"),
])
def test_an_unpaired_surrogate_is_400_not_500(
    client: TestClient, link: dict, fragment: str
) -> None:
    # JSON's \u escapes can spell half a UTF-16 pair, which no text holds: encoding it for the
    # database or the answer raised.
    resp = _post(client, link, "{" + fragment.replace("{s}", link["secret"]) + "}")
    assert resp.status_code == 400, resp.text
    assert "surrogate" in resp.json()["error"] and _alerts() == []
    (refused,) = _audit("webhook.refused")
    assert '"status": 400' in refused.detail


def test_an_escaped_pair_is_text_and_accepted(client: TestClient, link: dict) -> None:
    body = json.dumps(_alert(link, id="long \U0001F680"))  # ensure_ascii: "\ud83d\ude80"
    assert "\\ud83d\\ude80" in body
    resp = _post(client, link, body)
    assert resp.status_code == 202
    (alert,) = _alerts()
    assert alert.dedup_key == "id:long \U0001F680"


def test_a_nul_in_the_token_is_404_and_audited(client: TestClient, link: dict) -> None:
    # PostgreSQL refused the link query (and the audit record) with a NUL in it: a 500.
    resp = _post(client, link, _alert(link), token="abc%00def")
    assert resp.status_code == 404, resp.text
    (refused,) = _audit("webhook.refused")
    assert '"status": 404' in refused.detail and refused.subject == "'abc\\x00def'"
