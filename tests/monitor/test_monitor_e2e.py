"""Feed and monitor as real processes against the SmartAPI simulator, prices scripted:
paper alerts open positions (real RQ workers), the feed streams the simulator's ticks through
the official SDK socket, the monitor exits, a worker sells. SQLite only: the claim race is
covered on both databases in test_monitor_units."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
import redis

from ats_app.engine.core.money import to_paise, to_rupees
from ats_app.engine.exits import rules as exits
from ats_app.engine.market.tickbus import FEED_STATUS_KEY, STALE_KEY, encode_tick, tick_channel
from ats_app.simulator.server import ServerThread
from tests.monitor.kit import (
    TICK,
    Procs,
    alerts,
    audit,
    heartbeat,
    make_link,
    make_user,
    on_grid,
    position,
    positions,
    post,
    run_burst_worker,
    sells,
    sim_price,
    sim_spot_tokens,
    sim_subscribed,
    wait_for,
)

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

FEED = ["ats_app.engine.services.feed"]
MONITOR = ["ats_app.engine.services.monitor"]
WORKER = ["ats_app.cli", "worker"]


def expected_exit(entry: Decimal, rules: exits.ExitRules,
                  path: list[Decimal]) -> tuple[exits.ExitDecision, Decimal]:
    """The first exit the pure rules make on `path` (and the peak by then)."""
    view = exits.open_position("LONG", entry, 1, rules, TICK)
    now = datetime.now(UTC)
    for price in path:
        decision = exits.evaluate_exit(view, price, now, rules)
        if decision is not None:
            return decision, view.peak_price
        trail = exits.ratchet_trailing_stop(view, price, rules)
        peak = exits.update_peak(view, price)
        view = replace(view, peak_price=peak or view.peak_price,
                       current_stop=trail or view.current_stop)
    raise AssertionError("the path never exits")


def assert_exited_once(pid: int, reason: str, decision: exits.ExitDecision) -> None:
    p = position(pid)
    assert p.status == "CLOSED" and p.exit_reason == reason, (p.status, p.exit_reason)
    (sell,) = sells(pid)
    assert sell.status == "FILLED" and sell.quantity == p.quantity
    (trig,) = audit("position.exit_triggered", pid)
    assert trig["reason"] == reason
    assert Decimal(trig["trigger"]) == decision.trigger_price
    assert Decimal(trig["observed"]) == decision.observed_price
    assert p.exit_price_paise == sell.average_price_paise
    assert p.realized_pnl_paise == (p.exit_price_paise - p.entry_price_paise) * p.quantity


def rupees(paise: int) -> Decimal:
    value = to_rupees(paise)
    assert value is not None
    return value


def open_positions(specs: list[tuple[tuple[str, str], dict]]) -> list:
    for link, fields in specs:
        post(link, **fields)
    run_burst_worker()
    ps = positions()
    assert len(ps) == len(specs) and all(p.status == "OPEN" for p in ps), alerts()
    return ps


def start_services(procs: Procs, rds: redis.Redis, n_positions: int, *, feed: bool = True,
                   **monitor_env: str) -> None:
    if feed:
        procs.start("feed", FEED)
    procs.start("monitor", MONITOR, **monitor_env)
    procs.start("worker", WORKER)
    wait_for(lambda: heartbeat(rds).get("positions") == n_positions, 20,
             "the monitor to watch the positions")
    if feed:
        wait_for(lambda: heartbeat(rds).get("ticks_seen", 0) > 0
                 and heartbeat(rds).get("stale") == 0, 20, "live ticks at the monitor")


def test_stop_loss_target_and_trailing_stop_each_exit_once(
        database_url: str, redis_url: str, rds: redis.Redis, sim: ServerThread,
        procs: Procs) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    sl_link = make_link(alice, "sl", 5, 10, None)
    tgt_link = make_link(alice, "tgt", 5, 3, None)
    tsl_link = make_link(alice, "tsl", 5, None, 2)
    p_sl, p_tgt, p_tsl = open_positions([
        (sl_link, {"id": "sl-1"}),
        (tgt_link, {"id": "tgt-1", "option": "PE"}),
        (tsl_link, {"id": "tsl-1", "symbol": "BANKNIFTY"}),
    ])
    assert len({p_sl.symbol_token, p_tgt.symbol_token, p_tsl.symbol_token}) == 3
    for p in (p_sl, p_tgt, p_tsl):
        sim_price(sim, p.symbol_token, ltp=rupees(p.entry_price_paise))
    # Bob holds the same contract on his own link, with a wider stop.
    post(make_link(bob, "bob", 8, None, None), id="b-1", tradingsymbol=p_sl.symbol,
         exchange=p_sl.exchange)
    run_burst_worker()
    p_bob = positions()[-1]
    assert p_bob.user_id == bob and p_bob.symbol_token == p_sl.symbol_token
    start_services(procs, rds, 4)
    assert p_sl.symbol_token in sim_subscribed(sim)

    e_sl, e_tgt, e_tsl = (rupees(p.entry_price_paise) for p in (p_sl, p_tgt, p_tsl))
    e_bob = rupees(p_bob.entry_price_paise)
    paths = {
        p_sl.id: [on_grid(e_sl * Decimal(k)) for k in ("0.98", "0.96", "0.93")],
        p_tgt.id: [on_grid(e_tgt * Decimal(k)) for k in ("1.01", "1.02", "1.04")],
        p_tsl.id: [on_grid(e_tsl * Decimal(k)) for k in ("1.01", "1.02", "0.995")],
    }
    want = {
        p_sl.id: ("stop_loss", expected_exit(e_sl, exits.ExitRules.from_settings(5, 10), paths[
            p_sl.id])),
        p_tgt.id: ("target", expected_exit(e_tgt, exits.ExitRules.from_settings(5, 3),
                                           paths[p_tgt.id])),
        p_tsl.id: ("trailing_stop", expected_exit(
            e_tsl, exits.ExitRules.from_settings(5, None, 2), paths[p_tsl.id])),
    }
    # Each price held 1 s (10 of the simulator's ticks): the middle prices decide the outcome
    # (the trailing stop's peak), so a loaded runner must not be able to skip one.
    for p in (p_sl, p_tgt, p_tsl):
        sim_price(sim, p.symbol_token, path=paths[p.id], interval_ms=1000)
    wait_for(lambda: all(position(pid).status == "CLOSED" for pid in want), 30,
             "the three exits")
    for pid, (reason, (decision, _peak)) in want.items():
        assert decision.reason.value == reason
        assert_exited_once(pid, reason, decision)
    tsl_peak = want[p_tsl.id][1][1]
    assert position(p_tsl.id).peak_price_paise == to_paise(tsl_peak) == to_paise(
        paths[p_tsl.id][1])

    # Bob's stop (8 %) was not hit by Alice's exit price: his position is still guarded.
    assert position(p_bob.id).status == "OPEN" and sells(p_bob.id) == []
    # The socket stays open for Bob's contract; the closed instruments are unsubscribed on it.
    spots = sim_spot_tokens(sim)  # followed always, for ATM strikes
    wait_for(lambda: sim_subscribed(sim) == spots | {p_sl.symbol_token}, 10,
             "the closed instruments unsubscribed")
    bob_path = [on_grid(e_sl * Decimal(k)) for k in ("0.93", "0.91", "0.89")]
    bob_decision, _ = expected_exit(e_bob, exits.ExitRules.from_settings(8), bob_path)
    sim_price(sim, p_sl.symbol_token, path=bob_path, interval_ms=1000)
    wait_for(lambda: position(p_bob.id).status == "CLOSED", 20, "Bob's exit")
    assert_exited_once(p_bob.id, "stop_loss", bob_decision)

    # The last position on each instrument closed: only the index spots stay subscribed.
    wait_for(lambda: sim_subscribed(sim) == spots, 10, "the feed to unsubscribe")
    wait_for(lambda: heartbeat(rds).get("instruments") == 0, 10, "the monitor to unsubscribe")
    wait_for(lambda: [c["tokens"] for c in json.loads(rds.get(FEED_STATUS_KEY) or b"{}")
                      .get("connections", [])] == [len(spots)],
             5, "the feed status with one socket, for the spots")
    for p in (p_sl, p_tgt, p_tsl, p_bob):
        assert len(sells(p.id)) == 1


def test_feed_drop_and_reconnect_loses_no_exit(
        database_url: str, redis_url: str, rds: redis.Redis, sim: ServerThread,
        procs: Procs) -> None:
    uid = make_user("carol")
    (p,) = open_positions([(make_link(uid, "sl", 5, None, None), {"id": "d-1"})])
    entry = rupees(p.entry_price_paise)
    sim_price(sim, p.symbol_token, ltp=entry)
    # A long stale limit: the exit must come from the reconnected socket, not from REST.
    start_services(procs, rds, 1, ATS_FEED_STALE_SECONDS="30")
    httpx.post(f"{sim.base_url}/sim/faults",
               json={"route": "smart-stream", "kind": "ws_drop"}).raise_for_status()
    path = [on_grid(entry * Decimal("0.97")), on_grid(entry * Decimal("0.94"))]
    sim_price(sim, p.symbol_token, path=path, interval_ms=100)
    decision, _ = expected_exit(entry, exits.ExitRules.from_settings(5), path)
    wait_for(lambda: position(p.id).status == "CLOSED", 30, "the exit after the reconnect")
    assert_exited_once(p.id, "stop_loss", decision)
    wait_for(lambda: "reconnecting in" in procs.log("feed"), 5, "the feed's reconnect")
    (trig,) = audit("position.exit_triggered", p.id)
    assert trig["price_source"] == "ws"


def test_stale_feed_blocks_exits_and_rest_prices_guard(
        database_url: str, redis_url: str, rds: redis.Redis, sim: ServerThread,
        procs: Procs) -> None:
    uid = make_user("dave")
    (p,) = open_positions([(make_link(uid, "sl", 5, None, None), {"id": "s-1"})])
    entry = rupees(p.entry_price_paise)
    sim_price(sim, p.symbol_token, ltp=entry)
    start_services(procs, rds, 1, feed=False)  # no feed at all: the socket is "dead"
    key = f"{p.exchange}:{p.symbol_token}"
    stale = wait_for(lambda: rds.hget(STALE_KEY, key), 10, "the instrument marked stale")
    assert json.loads(stale)["rest"] is True
    wait_for(lambda: audit("feed.stale", p.id), 5, "the stale audit event")
    # An old tick far below the stop arrives late: no decision is made on it.
    crash = to_paise(on_grid(entry * Decimal("0.5")))
    assert crash is not None
    import time

    rds.publish(tick_channel(p.exchange, p.symbol_token), encode_tick(crash, time.time() - 60))
    wait_for(lambda: audit("monitor.stale_price_ignored", p.id), 5, "the ignored-tick audit")
    assert position(p.id).status == "OPEN"
    # REST quotes of the real (simulated) price guard the position meanwhile.
    path = [on_grid(entry * Decimal("0.97")), on_grid(entry * Decimal("0.94"))]
    decision, _ = expected_exit(entry, exits.ExitRules.from_settings(5), path)
    sim_price(sim, p.symbol_token, path=path, interval_ms=400)
    wait_for(lambda: position(p.id).status == "CLOSED", 30, "the exit on REST prices")
    (trig,) = audit("position.exit_triggered", p.id)
    assert trig["price_source"] == "rest" and trig["reason"] == "stop_loss"
    assert Decimal(trig["observed"]) <= decision.trigger_price
    assert len(sells(p.id)) == 1


def test_monitor_killed_between_trigger_and_sell_restarts_to_one_sell(
        database_url: str, redis_url: str, rds: redis.Redis, sim: ServerThread,
        procs: Procs) -> None:
    uid = make_user("erin")
    (p,) = open_positions([(make_link(uid, "sl", 5, None, None), {"id": "k-1"})])
    entry = rupees(p.entry_price_paise)
    sim_price(sim, p.symbol_token, ltp=entry)
    procs.start("feed", FEED)
    procs.start("monitor", MONITOR, ATS_MONITOR_FAULT="kill_after_claim")
    wait_for(lambda: heartbeat(rds).get("ticks_seen", 0) > 0, 20, "ticks at the monitor")
    sim_price(sim, p.symbol_token, ltp=on_grid(entry * Decimal("0.9")))
    monitor = procs.procs["monitor"]
    wait_for(lambda: monitor.poll() is not None, 20, "the monitor to die after its claim")
    assert monitor.returncode == -9
    procs.procs.pop("monitor")
    assert position(p.id).status == "EXITING" and sells(p.id) == []
    assert not rds.exists(f"rq:job:exit-{p.id}")
    procs.start("monitor2", MONITOR)  # no fault: recovery enqueues the one sell
    procs.start("worker", WORKER)
    wait_for(lambda: position(p.id).status == "CLOSED", 30, "the recovered exit")
    assert position(p.id).exit_reason == "stop_loss"
    (sell,) = sells(p.id)
    assert sell.status == "FILLED"
    assert len(audit("position.exit_requeued", p.id)) == 1
    assert len(audit("position.exit_triggered", p.id)) == 1
