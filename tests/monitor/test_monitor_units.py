"""The pure pieces of the monitor and feed, property-style checks on seeded random paths, and
the database-level guarantees (one claim, one sell job, recovery, trail across restarts)."""

from __future__ import annotations

import json
import os
import random
import threading
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job

from ats_app.cli import main as cli_main
from ats_app.engine.exits import rules as exits
from ats_app.engine.exits.claims import ExitClaim, claim_exit, claim_exits, finish_pending_exits
from ats_app.engine.exits.tracker import Tracked, on_price
from ats_app.engine.exits.watchlist import Watchlist, tracked_from, write_trails
from ats_app.engine.market.feed_sources import Backoff, SourceResolver, feed_url, socket_silent
from ats_app.engine.market.tickbus import (
    FeedSettings,
    decode_tick,
    encode_tick,
    instrument_of_channel,
    shard_of,
    tick_channel,
)
from ats_app.engine.services.feed import FeedSocket
from ats_app.engine.services.monitor import Monitor
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import AuditEvent, Position
from ats_app.engine.tenants import users

NOW = datetime(2026, 11, 25, 4, 30, tzinfo=UTC)
TICK = Decimal("0.05")


def tracked(entry: int = 10000, rules: exits.ExitRules | None = None, pid: int = 1,
            tick: int = 5) -> Tracked:
    rules = rules or exits.ExitRules.from_settings(5, 10, 2)
    view = exits.open_position("LONG", Decimal(entry) / 100, 1, rules, Decimal(tick) / 100)
    def paise(value: Decimal | None) -> int | None:
        return None if value is None else int(value * 100)

    p = Position(id=pid, user_id=1, exchange="NFO", symbol="X", symbol_token="43650", quantity=1,
                 entry_price_paise=entry, initial_stop_paise=paise(view.initial_stop),
                 stop_paise=paise(view.current_stop), target_paise=paise(view.target),
                 peak_price_paise=entry, tick_size_paise=tick,
                 trailing_stop_pct=None if rules.trailing_stop_pct is None
                 else float(rules.trailing_stop_pct))
    return tracked_from(p)


def reference(entry: int, rules: exits.ExitRules,
              path: list[int]) -> tuple[int, exits.ExitDecision] | None:
    """The first exit of the pure rules on a path of paise prices: (index, decision)."""
    view = exits.open_position("LONG", Decimal(entry) / 100, 1, rules, TICK)
    for i, paise in enumerate(path):
        price = Decimal(paise) / 100
        decision = exits.evaluate_exit(view, price, NOW, rules)
        if decision is not None:
            return i, decision
        trail = exits.ratchet_trailing_stop(view, price, rules)
        peak = exits.update_peak(view, price)
        view = replace(view, peak_price=peak or view.peak_price,
                       current_stop=trail or view.current_stop)
    return None


def walk(rng: random.Random, start: int, n: int, drift: int = 0) -> list[int]:
    out, price = [], start
    for _ in range(n):
        price = max(5, price + 5 * rng.randint(-6 + drift, 6 + drift))
        out.append(price)
    return out


RULES = [exits.ExitRules.from_settings(5, 10, 2), exits.ExitRules.from_settings(5, 3, None),
         exits.ExitRules.from_settings(None, None, 1.5), exits.ExitRules.from_settings(2, None, 5),
         exits.ExitRules.from_settings(None, 4, None)]


@pytest.mark.parametrize("seed", range(40))
def test_fast_path_agrees_with_the_pure_rules(seed: int) -> None:
    rng = random.Random(seed)
    rules = RULES[seed % len(RULES)]
    entry = rng.randint(2000, 40000) // 5 * 5
    path = walk(rng, entry, 400, drift=rng.choice((-1, 0, 1)))
    t = tracked(entry, rules)
    got = None
    stops = []
    for i, price in enumerate(path):
        _, decision = on_price(t, price, NOW)
        stops.append(t.stop)
        if decision is not None:
            got = (i, decision)
            break
    want = reference(entry, rules, path)
    assert (got and (got[0], got[1].reason, got[1].trigger_price)) == (
        want and (want[0], want[1].reason, want[1].trigger_price))
    real = [s for s in stops if s is not None]
    assert real == sorted(real), "the trail moved down"


@pytest.mark.parametrize("seed", range(20))
def test_falling_path_never_exits_above_the_stop(seed: int) -> None:
    rng = random.Random(1000 + seed)
    t = tracked(10000, exits.ExitRules.from_settings(5, None, rng.choice((1, 2, 3))))
    price = 10000 + 5 * rng.randint(0, 100)  # first up, then only down
    for _ in range(2000):
        stop_before = t.stop
        _, decision = on_price(t, price, NOW)
        if decision is not None:
            assert price <= stop_before  # type: ignore[operator]
            assert decision.trigger_price == Decimal(stop_before) / 100  # type: ignore[arg-type]
            return
        price -= 5 * rng.randint(0, 3)
    pytest.fail("never exited")


def test_issue_example_trailing_stop() -> None:
    # The issue's numbers need a 1-paisa tick: on a 5-paise grid the trail rounds to 100.00.
    t = tracked(10000, exits.ExitRules.from_settings(5, None, 2), tick=1)
    assert on_price(t, 10100, NOW)[1] is None and on_price(t, 10200, NOW)[1] is None
    assert t.peak == 10200 and t.stop == 9996
    _, decision = on_price(t, 9990, NOW)
    assert decision is not None and decision.reason is exits.ExitReason.TRAILING_STOP
    assert decision.trigger_price == Decimal("99.96") and t.peak == 10200


def test_exiting_positions_are_not_evaluated() -> None:
    t = tracked()
    t.state = "EXITING"
    assert on_price(t, 1, NOW) == (False, None) and t.last_price == 1


def test_tick_messages_and_channels() -> None:
    assert tick_channel("nfo", "43650") == "ticks:NFO:43650"
    assert instrument_of_channel(b"ticks:NFO:43650") == "NFO:43650"
    assert decode_tick(encode_tick(10235, 12.5, "rest")) == (10235, 12.5, "rest")
    for bad in (b"{}", b"nope", b'{"ltp_paise": 0, "at": 1}', b'{"ltp_paise": "x", "at": 1}'):
        with pytest.raises(ValueError):
            decode_tick(bad)


def test_shards_are_stable_and_cover_everything() -> None:
    keys = [f"NFO:{n}" for n in range(2000)]
    counts = [0, 0, 0]
    for k in keys:
        assert shard_of(k, 3) == shard_of(k, 3)
        counts[shard_of(k, 3)] += 1
    assert min(counts) > 500
    owners = [FeedSettings(shards=3, shard=i) for i in range(3)]
    assert all(sum(o.owns(k) for o in owners) == 1 for k in keys)


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATS_FEED_STALE_SECONDS", "2.5")
    monkeypatch.setenv("ATS_MONITOR_SHARDS", "4")
    monkeypatch.setenv("ATS_MONITOR_SHARD", "3")
    s = FeedSettings.from_env()
    assert (s.stale_seconds, s.shards, s.shard) == (2.5, 4, 3)
    monkeypatch.setenv("ATS_MONITOR_SHARD", "4")
    with pytest.raises(ValueError):
        FeedSettings.from_env()
    monkeypatch.setenv("ATS_FEED_STALE_SECONDS", "0")
    with pytest.raises(ValueError):
        FeedSettings.from_env()


def test_backoff_is_jittered_capped_and_unlimited() -> None:
    b = Backoff(base=0.5, cap=8.0, rng=random.Random(3))
    delays = [b.next() for _ in range(200)]
    assert all(0 < d <= 8.0 for d in delays)
    assert 0.25 <= delays[0] <= 0.5 and all(4.0 <= d <= 8.0 for d in delays[10:])
    assert len(set(delays[10:])) > 150  # jittered, not lockstep
    b.reset()
    assert b.next() <= 0.5


def test_watchdog_rule() -> None:
    assert not socket_silent(100, None, None, 5, 10)  # not connected
    assert not socket_silent(100, 50, None, 0, 10)  # nothing subscribed
    assert socket_silent(100, 50, None, 5, 10)  # open 50 s, never a tick
    assert not socket_silent(100, 50, 95, 5, 10)
    assert socket_silent(100, 50, 85, 5, 10)


def test_feed_url() -> None:
    assert feed_url(None).startswith("wss://smartapisocket.angelone.in")
    assert feed_url("http://127.0.0.1:9100") == "ws://127.0.0.1:9100/smart-stream"
    assert feed_url("https://sim.example:8443/") == "wss://sim.example:8443/smart-stream"


def test_feed_socket_has_the_sdk_attributes_without_its_side_effects(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from SmartApi.smartWebSocketV2 import SmartWebSocketV2

    monkeypatch.chdir(tmp_path)
    ours = FeedSocket(url="ws://x/smart-stream", jwt="j", api_key="k", client_code="c",
                      feed_token="f")
    assert not (tmp_path / "logs").exists()
    sdk = SmartWebSocketV2("j", "k", "c", "f")  # the real one, for its attribute list
    assert set(vars(sdk)) <= set(vars(ours))
    other = FeedSocket(url="ws://x/smart-stream", jwt="j", api_key="k", client_code="c",
                       feed_token="f")
    ours.input_request_dict[1] = {2: ["1"]}
    assert other.input_request_dict == {} and SmartWebSocketV2.input_request_dict == {}
    with pytest.raises(ValueError):
        FeedSocket(url="ws://x", jwt="", api_key="k", client_code="c", feed_token="f")


def test_watchlist_subscribes_first_and_unsubscribes_last() -> None:
    w = Watchlist()
    a, b = tracked(pid=1), tracked(pid=2)
    assert w.add(a) is True and w.add(b) is False
    assert w.remove(1) is None and w.remove(2) == "NFO:43650" and w.instruments() == set()


def test_trail_from_redis_wins_when_more_favourable() -> None:
    p = Position(id=7, user_id=1, exchange="NFO", symbol="X", symbol_token="1", quantity=1,
                 entry_price_paise=10000, initial_stop_paise=9500, stop_paise=9500,
                 peak_price_paise=10100, trailing_stop_pct=2.0)
    t = tracked_from(p, (10400, 10195))
    assert (t.peak, t.stop) == (10400, 10195)
    t = tracked_from(p, (10050, 9400))  # an older Redis copy never loosens the trail
    assert (t.peak, t.stop) == (10100, 9500)


# ---------------------------------------------------------------- database and Redis


def _position(status: str = "OPEN", reason: str | None = None, token: str = "43650",
              user: str = "trader") -> int:
    with session_scope() as s:
        uid = users.create_user(s, user, "password123", "T", "R").id
        p = Position(user_id=uid, exchange="NFO", symbol="NIFTYX", symbol_token=token,
                     quantity=50, entry_price_paise=10000, initial_stop_paise=9500,
                     stop_paise=9500, target_paise=11000, peak_price_paise=10000,
                     trailing_stop_pct=2.0, status=status, exit_reason=reason)
        s.add(p)
        s.flush()
        assert p.id is not None
        return p.id


def _decision(reason: exits.ExitReason = exits.ExitReason.STOP_LOSS) -> exits.ExitDecision:
    return exits.ExitDecision(reason, Decimal("95"), Decimal("94.5"), NOW)


def test_racing_claims_have_one_winner(database_url: str) -> None:
    pid = _position()
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        results.append(claim_exit(pid, _decision(), source="ws", trail=(10300, 10094)))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert sorted(results) == [False] * 7 + [True]
    with session_scope() as s:
        p = s.get(Position, pid)
        assert p is not None and (p.status, p.exit_reason, p.peak_price_paise) == (
            "EXITING", "stop_loss", 10300)
        events = s.exec(AuditEvent.__table__.select().where(
            AuditEvent.action == "position.exit_triggered")).all()
    assert len(events) == 1 and json.loads(events[0].detail)["observed"] == "94.5"


def test_one_tick_claims_all_its_positions_together_and_skips_taken_ones(
    database_url: str,
) -> None:
    first = _position(user="trader1")
    taken = _position(user="trader2", status="EXITING", reason="manual")
    last = _position(user="trader3")
    claims = [ExitClaim(pid, _decision(), trail=(10300, 10094)) for pid in (first, taken, last)]
    assert claim_exits(claims, source="ws") == [first, last]
    with session_scope() as s:
        rows = {pid: s.get(Position, pid) for pid in (first, taken, last)}
        events = s.exec(AuditEvent.__table__.select().where(
            AuditEvent.action == "position.exit_triggered")).all()
    assert [(rows[p].status, rows[p].exit_reason, rows[p].peak_price_paise)  # type: ignore[union-attr]
            for p in (first, taken, last)] == [
        ("EXITING", "stop_loss", 10300), ("EXITING", "manual", 10000),
        ("EXITING", "stop_loss", 10300)]
    assert sorted(e.subject for e in events) == sorted([str(first), str(last)])
    assert claim_exits(claims, source="ws") == []  # nobody wins twice


def test_restart_finishes_monitor_claims_only_once(database_url: str, redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    mine = _position("EXITING", "trailing_stop", user="ann")
    alerts = _position("EXITING", "signal", user="bea")  # an alert job owns this claim
    assert finish_pending_exits(r) == [mine]
    assert finish_pending_exits(r) == []  # the job exists now
    job = Job.fetch(f"exit-{mine}", connection=r)
    assert job.args == (mine, "trailing_stop")
    assert not Job.exists(f"exit-{alerts}", connection=r)
    assert finish_pending_exits(r, owned={alerts}) == []


def _monitor(r: redis.Redis) -> Monitor:
    m = Monitor(r, FeedSettings(stale_seconds=5))
    m._load(SourceResolver(), set())
    m._drain_inbox()
    return m


def test_two_monitors_one_sell_job_and_the_trail_survives_a_restart(
        database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATS_SIMULATOR", "false")
    r = redis.Redis.from_url(redis_url)
    pid = _position()
    first = _monitor(r)
    now = __import__("time").time()
    for price in (10100, 10300, 10250):  # peak 103.00 -> trail 100.94, up to the tick: 100.95
        first.on_tick("NFO:43650", price, now)
    first._periodic(1e12, dict.fromkeys(("trail", "db", "pnl", "beat"), 0.0))
    first.pubsub.close()
    restarted, other = _monitor(r), _monitor(r)
    t = restarted.watch.get(pid)
    assert t is not None and (t.peak, t.stop) == (10300, 10095)
    for m in (restarted, other):
        m.on_tick("NFO:43650", 10090, now)  # under the trail: both decide to exit
    for m in (restarted, other):
        m.pubsub.close()
    assert restarted.exits_enqueued + other.exits_enqueued == 1
    job = Job.fetch(f"exit-{pid}", connection=r)
    assert job.args == (pid, "trailing_stop")
    assert r.llen("rq:queue:exits") == 1


def test_a_failed_claim_rearms_every_position_of_the_tick_and_the_next_tick_sells_them(
        database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from ats_app.engine.services import monitor as monitor_mod

    monkeypatch.setenv("ATS_SIMULATOR", "false")
    r = redis.Redis.from_url(redis_url)
    pids = [_position(user="trader1"), _position(user="trader2")]  # one instrument, one stop
    m = _monitor(r)
    now = __import__("time").time()

    def down(*_a: object, **_k: object) -> list[int]:
        raise RuntimeError("database unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(monitor_mod, "claim_exits", down)
        m.on_tick("NFO:43650", 9400, now)  # under both stops: the claim fails
    assert [m.watch.get(pid).state for pid in pids] == ["OPEN", "OPEN"]  # type: ignore[union-attr]
    assert m.in_flight == set() and m.exits_enqueued == 0
    m.on_tick("NFO:43650", 9400, now)
    m.pubsub.close()
    assert m.exits_enqueued == 2
    assert sorted(Job.fetch(f"exit-{pid}", connection=r).args[0] for pid in pids) == pids
    with session_scope() as s:
        assert [s.get(Position, pid).status for pid in pids] == ["EXITING", "EXITING"]  # type: ignore[union-attr]


def test_positions_list_json(database_url: str, redis_url: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    pid = _position(user="zoe")
    write_trails(redis.Redis.from_url(redis_url), {})
    assert cli_main(["positions", "list", "--user", "zoe", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["id"] == pid and row["status"] == "OPEN" and row["stop_price"] == "95.00"
    for key in ("id", "link", "tradingsymbol", "symboltoken", "quantity", "entry_price",
                "peak_price", "stop_price", "target_price", "status", "exit_reason",
                "exit_price", "pnl"):
        assert key in row
    assert cli_main(["positions", "list", "--user", "zoe", "--status", "closed", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert os.environ.get("REDIS_URL")


def test_trails_flush_to_the_database_but_never_onto_a_closed_row(database_url: str) -> None:
    from ats_app.engine.exits.watchlist import save_trails_to_db

    open_id, closed_id = _position(user="ray"), _position("CLOSED", "target", user="sam")
    save_trails_to_db({open_id: (10400, 10195), closed_id: (10400, 10195)})
    with session_scope() as s:
        p_open, p_closed = s.get(Position, open_id), s.get(Position, closed_id)
        assert p_open is not None and p_closed is not None
        assert (p_open.peak_price_paise, p_open.stop_paise) == (10400, 10195)
        assert (p_closed.peak_price_paise, p_closed.stop_paise) == (10000, 9500)


def test_a_rising_trail_moves_the_stop_resting_at_the_broker_once_a_flush(
        database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Positions with Stop at broker: each trail flush (once a second) enqueues one move to
    the newest stop; a position whose stop lives only with us enqueues none."""
    monkeypatch.setenv("ATS_SIMULATOR", "false")
    r = redis.Redis.from_url(redis_url)
    at_broker, ours = _position(), _position(user="bea")
    with session_scope() as s:
        s.get(Position, at_broker).broker_stop = True  # type: ignore[union-attr]
    m = _monitor(r)
    now = __import__("time").time()
    for price in (10100, 10300, 10400):  # the trail rises three times inside one flush
        m.on_tick("NFO:43650", price, now)
    m._periodic(1e12, dict.fromkeys(("trail", "db", "pnl", "beat"), 0.0))
    while not m._jobs.empty():  # the housekeeping thread's work, run here
        m._jobs.get_nowait()()
    m.pubsub.close()
    queued = [Job.fetch(j, connection=r) for j in Queue("exits", connection=r).job_ids]
    moves = [j for j in queued if j.func_name.endswith("broker_stops.move_stop")]
    assert [j.args for j in moves] == [(at_broker, 10195)]  # 104.00 less 2 %, on the tick
    assert ours not in {j.args[0] for j in moves}
