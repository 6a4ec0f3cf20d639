"""Feed process throughput: ticks/s the real feed process (`python -m ats_app.cli feed`) puts
on the Redis tick bus, and the time from a simulator price change to its tick on the bus.

Run: ``.venv/bin/python -m bench.feed_bench [--instruments 500,1000] [--seconds 5]``. A private
redis-server and SQLite database, the SmartAPI simulator in its own process (a packet per
subscribed token every 100 ms, LTP mode, as the dev services run it) and the feed process.
Per phase, `--positions-per-instrument` open positions on each of K simulator options:

- offered: K x 10 ticks/s; published: Redis's own count of PUBLISH calls (commandstats), so
  counting costs the feed nothing; the feed keeps up when published ~ offered;
- price -> bus: `--samples` times, the simulator's price of one watched option is pinned
  (POST /sim/price) at a random phase; latency = from that POST returning to a subscriber in
  this process receiving the tick with the new price (includes the simulator's 100 ms
  cadence: the floor is ~50 ms p50, ~100 ms max);
- feed receipt -> bus: from the `at` the feed stamps on receiving that tick to its arrival
  here (the feed's queue, writer and Redis alone, without the simulator's cadence);
- CPU % (of one core) of the feed, the simulator and redis-server meanwhile.

Then, with `--exits N` (default 100) and the last phase's positions still open, the monitor
process is started too, and N instruments in turn are pinned below their positions' stop:
tick -> exit = from that POST returning to the first sell job landing on RQ's `exits` queue
(BLPOP here; no worker runs), split at the moment the crossing tick reaches the bus; and
feed receipt -> exit = from the feed's receipt stamp on that tick to the sell job's RQ
`enqueued_at` (the goal's "tick emitted -> sell enqueued" less the loopback hop). The
whole path: simulator cadence -> feed -> Redis -> monitor (claim in SQLite + enqueue), while
the simulator keeps offering 10 ticks/s on every other instrument.

Benchmarks never fail on a number; this prints and saves what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.results import percentile, save

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FEED_INTERVAL_MS = 100
DEFAULT_EXITS = 100  # tick -> exit samples: enough for a p99 that is not just the maximum


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_sim(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("simulator exited early")
        try:
            httpx.get(base + "/sim/health", timeout=1).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("simulator did not start")


def _options(sim: str, count: int) -> list[dict[str, Any]]:
    from ats_app.engine.market.scrip_master import SCRIP_MASTER_PATH

    rows = httpx.get(f"{sim}{SCRIP_MASTER_PATH}", timeout=60).json()
    options = [r for r in rows if r["exch_seg"] == "NFO" and r["instrumenttype"] == "OPTIDX"]
    step = max(1, len(options) // count)
    out = []
    with httpx.Client(timeout=10) as client:
        for r in options[::step][:count]:
            ltp = float(client.get(f"{sim}/sim/quote/{r['token']}").json().get("ltp") or 0)
            if ltp > 0:
                out.append({"token": r["token"], "symbol": r["symbol"],
                            "ltp_paise": round(ltp * 100), "lotsize": int(r["lotsize"])})
    return out


def _set_positions(opts: list[dict[str, Any]], per: int, uid: int) -> None:
    """Replace every open position by `per` on each option of `opts` (stops far away)."""
    from sqlalchemy import update
    from sqlmodel import col

    from ats_app.engine.store.db import session_scope
    from ats_app.engine.store.models import Position

    with session_scope() as s:
        s.exec(update(Position).where(col(Position.status) == "OPEN")  # type: ignore[call-overload]
               .values(status="CLOSED", exit_reason="bench"))
        for o in opts:
            e = o["ltp_paise"]
            for _ in range(per):
                s.add(Position(user_id=uid, exchange="NFO", symbol=o["symbol"],
                               symbol_token=o["token"], quantity=o["lotsize"],
                               lot_size=o["lotsize"], tick_size_paise=5,
                               entry_price_paise=e, initial_stop_paise=e // 2,
                               stop_paise=e // 2, target_paise=e * 2, peak_price_paise=e,
                               paper=True))


def _publishes(r: Any) -> int:
    stats = r.info("commandstats").get("cmdstat_publish") or {}
    return int(stats.get("calls", 0))


def _cpu(procs: dict[str, psutil.Process], seconds: float, r: Any) -> tuple[float, dict]:
    for p in procs.values():
        p.cpu_percent(None)
    n0, t0 = _publishes(r), time.monotonic()
    time.sleep(seconds)
    n1, t1 = _publishes(r), time.monotonic()
    cpu = {k: round(p.cpu_percent(None), 1) for k, p in procs.items()}
    return (n1 - n0) / (t1 - t0), cpu


def _latency(r: Any, sim: str, opt: dict[str, Any],
             samples: int) -> tuple[list[float], list[float], int]:
    from ats_app.engine.market.tickbus import decode_tick, tick_channel

    ps = r.pubsub(ignore_subscribe_messages=True)
    ps.subscribe(tick_channel("NFO", opt["token"]))
    rng = random.Random(11)
    out: list[float] = []
    inside: list[float] = []  # the feed's receipt stamp (`at`) -> here: feed + Redis alone
    missed = 0
    with httpx.Client(timeout=10) as client:
        for i in range(samples):
            time.sleep(rng.uniform(0, 0.25))
            price = opt["ltp_paise"] + 5 * (1 + i % 40)
            client.post(f"{sim}/sim/price", json={"token": opt["token"], "ltp": price / 100}) \
                .raise_for_status()
            posted = time.time()
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                msg = ps.get_message(timeout=0.5)
                if msg and decode_tick(msg["data"])[0] == price:
                    now = time.time()
                    out.append((now - posted) * 1000)
                    inside.append((now - decode_tick(msg["data"])[1]) * 1000)
                    break
            else:
                missed += 1
    ps.close()
    return out, inside, missed


def _exits(r: Any, sim: str, opts: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """ms from pinning an instrument below its stop to its first sell job on the queue."""
    import threading
    from datetime import UTC

    from rq.job import Job

    from ats_app.engine.market.tickbus import decode_tick, tick_channel
    from ats_app.engine.store.redis_conn import EXITS_QUEUE

    queue = f"rq:queue:{EXITS_QUEUE}"
    landed: list[tuple[float, bytes]] = []  # (when BLPOP here got it, the job id)
    stop = threading.Event()

    def pop() -> None:
        import redis

        c = redis.Redis.from_url(_URL[0])  # its own connection: BLPOP blocks it
        while not stop.is_set():
            got = c.blpop([queue], timeout=0.2)
            if got:
                landed.append((time.time(), got[1]))
        c.close()

    popper = threading.Thread(target=pop, daemon=True)
    popper.start()
    rng = random.Random(17)
    total, to_bus, bus_to_exit, feed_to_exit, missed = [], [], [], [], 0
    with httpx.Client(timeout=10) as client:
        for o in opts[:n]:
            time.sleep(rng.uniform(0.1, 0.35))
            price = (o["ltp_paise"] // 2 - 5) // 5 * 5  # under the stop (entry / 2)
            ps = r.pubsub(ignore_subscribe_messages=True)
            ps.subscribe(tick_channel("NFO", o["token"]))
            ps.get_message(timeout=1.0)
            seen = len(landed)
            client.post(f"{sim}/sim/price", json={"token": o["token"], "ltp": price / 100}) \
                .raise_for_status()
            posted = time.time()
            bus_at = tick_at = None
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and (bus_at is None or len(landed) == seen):
                msg = ps.get_message(timeout=0.01)
                if bus_at is None and msg:
                    got_price, stamped, _ = decode_tick(msg["data"])
                    if got_price == price:
                        bus_at, tick_at = time.time(), stamped  # stamped: the feed's receipt
            ps.close()
            if len(landed) == seen or bus_at is None:
                missed += 1
                continue
            exit_at, job_id = landed[seen]
            total.append((exit_at - posted) * 1000)
            to_bus.append((bus_at - posted) * 1000)
            bus_to_exit.append((exit_at - bus_at) * 1000)
            # Both stamps taken by the system itself (the feed's receipt, the monitor's
            # enqueue), so this process's own polling adds nothing to this one.
            enqueued = Job.fetch(job_id.decode(), connection=r).enqueued_at
            assert tick_at is not None and enqueued is not None
            feed_to_exit.append((enqueued.replace(tzinfo=UTC).timestamp() - tick_at) * 1000)
    stop.set()
    popper.join(5)

    def stats(v: list[float]) -> dict[str, Any]:
        return {"p50": round(percentile(v, 50), 1), "p99": round(percentile(v, 99), 1),
                "max": round(max(v, default=float("nan")), 1)}

    return {"n": len(total), "missed": missed, "price_to_exit_enqueued_ms": stats(total),
            "price_to_bus_ms": stats(to_bus), "bus_to_exit_enqueued_ms": stats(bus_to_exit),
            "feed_receipt_to_exit_enqueued_ms": stats(feed_to_exit)}


_URL: list[str] = []


def run(instruments: list[int], per: int, seconds: float, samples: int,
        interval_ms: int = DEFAULT_FEED_INTERVAL_MS, exits: int = DEFAULT_EXITS) -> dict[str, Any]:
    import redis
    from cryptography.fernet import Fernet

    from ats_app.engine.core.config import reset_settings_cache
    from ats_app.engine.execution.positions import POSITIONS_CHANNEL
    from ats_app.engine.services import embedded_redis
    from ats_app.engine.store import db
    from ats_app.engine.tenants import users

    tmp = Path(tempfile.mkdtemp(prefix="ats-feed-bench-"))
    port = _free_port()
    env = {"ATS_ENV": "dev", "ATS_DATA_DIR": str(tmp / "data"), "ATS_IP_ECHO_URL": "",
           "ATS_SECRET_KEY": Fernet.generate_key().decode(), "ATS_SIMULATOR": "true",
           "SIMULATOR_PORT": str(port), "DATABASE_URL": f"sqlite:///{tmp / 'ats.db'}"}
    os.environ.update(env)
    redis_proc, url = embedded_redis.start(tmp / "data")
    os.environ["REDIS_URL"] = url
    _URL[:] = [url]
    child_env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sim_proc = subprocess.Popen(
        [sys.executable, "-m", "ats_app.simulator", "--port", str(port),
         "--feed-interval-ms", str(interval_ms)], cwd=tmp, env=child_env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    feed_proc: subprocess.Popen[bytes] | None = None
    monitor_proc: subprocess.Popen[bytes] | None = None
    phases: dict[str, Any] = {}
    try:
        reset_settings_cache()
        db.upgrade()
        with db.session_scope() as s:
            uid = int(users.create_user(s, "feedbench", "password123", "F", "B").id or 0)
        sim = f"http://127.0.0.1:{port}"
        _wait_sim(sim, sim_proc)
        opts = _options(sim, max(instruments))
        r = redis.Redis.from_url(url)
        log = open(tmp / "feed.log", "wb")  # noqa: SIM115 - closed with the child
        feed_proc = subprocess.Popen([sys.executable, "-m", "ats_app.cli", "feed"], cwd=tmp,
                                     env=child_env, stdout=log, stderr=subprocess.STDOUT)
        procs = {"feed": psutil.Process(feed_proc.pid), "simulator": psutil.Process(
            sim_proc.pid), "redis": psutil.Process(redis_proc.pid)}
        for k in instruments:
            chosen = opts[:k]
            _set_positions(chosen, per, uid)
            r.publish(POSITIONS_CHANNEL, json.dumps({"event": "opened"}))
            time.sleep(3)  # subscribed, first rounds through, TCP windows open
            rate, cpu = _cpu(procs, seconds, r)
            lat, inside, missed = _latency(r, sim, chosen[len(chosen) // 2], samples)
            phase = {"instruments": len(chosen), "positions": len(chosen) * per,
                     "offered_ticks_per_s": len(chosen) * 1000 // interval_ms,
                     "published_ticks_per_s": round(rate), "cpu_pct": cpu,
                     "price_to_bus_ms": {"p50": round(percentile(lat, 50), 1),
                                         "p95": round(percentile(lat, 95), 1),
                                         "max": round(max(lat, default=float("nan")), 1),
                                         "n": len(lat), "missed": missed},
                     "feed_receipt_to_bus_ms": {"p50": round(percentile(inside, 50), 2),
                                                "p95": round(percentile(inside, 95), 2),
                                                "max": round(max(inside, default=float("nan")),
                                                             2)}}
            phases[f"{len(chosen)} instruments"] = phase
            print(json.dumps(phase), flush=True)
        if exits and phases:
            monitor_proc = subprocess.Popen([sys.executable, "-m", "ats_app.cli", "monitor"],
                                            cwd=tmp, env=child_env, stdout=log,
                                            stderr=subprocess.STDOUT)
            want = len(chosen) * per
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                beat = json.loads(r.get("ats:monitor:heartbeat") or "{}")
                if beat.get("positions") == want:
                    break
                time.sleep(0.5)
            time.sleep(2)  # subscribed to every instrument, ticks flowing
            procs["monitor"] = psutil.Process(monitor_proc.pid)
            _rate, cpu = _cpu(procs, 3, r)
            result = _exits(r, sim, chosen, exits)
            phases["tick_to_exit"] = {"instruments": len(chosen), "positions": want,
                                      "offered_ticks_per_s": len(chosen) * 1000 // interval_ms,
                                      "cpu_pct": cpu, **result}
            print(json.dumps(phases["tick_to_exit"]), flush=True)
        r.close()
    finally:
        for p in (monitor_proc, feed_proc, sim_proc, redis_proc):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
    return phases


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instruments", default="500,1000",
                   help="comma-separated instrument counts, one phase each")
    p.add_argument("--positions-per-instrument", type=int, default=2)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--samples", type=int, default=30)
    p.add_argument("--exits", type=int, default=DEFAULT_EXITS,
                   help="tick -> exit samples through feed and monitor (0: skip)")
    p.add_argument("--feed-interval-ms", type=int, default=DEFAULT_FEED_INTERVAL_MS,
                   help="the simulator's cadence (a packet per token per interval); lower it "
                        "to offer more ticks than 10/s per instrument")
    args = p.parse_args(argv)
    counts = [int(x) for x in args.instruments.split(",") if x.strip()]
    phases = run(counts, args.positions_per_instrument, args.seconds, args.samples,
                 args.feed_interval_ms, args.exits)
    print(f"\n{'feed process':18} {'offered/s':>9} {'published/s':>11} {'feed CPU %':>10} "
          f"{'sim CPU %':>9} {'p50 ms':>7} {'p95 ms':>7} {'miss':>4} {'in feed p50/p95 ms':>18}")
    for name, ph in phases.items():
        if name == "tick_to_exit":
            continue
        lat = ph["price_to_bus_ms"]
        print(f"{name:18} {ph['offered_ticks_per_s']:>9} {ph['published_ticks_per_s']:>11} "
              f"{ph['cpu_pct'].get('feed')!s:>10} {ph['cpu_pct'].get('simulator')!s:>9} "
              f"{lat['p50']:>7} {lat['p95']:>7} {lat['missed']:>4} "
              f"{ph['feed_receipt_to_bus_ms']['p50']:>8} / {ph['feed_receipt_to_bus_ms']['p95']}")
    ex = phases.get("tick_to_exit")
    if ex:
        print(f"\ntick -> exit enqueued, {ex['positions']} positions on {ex['instruments']} "
              f"instruments ({ex['n']} samples, {ex['missed']} missed): price->exit "
              f"{ex['price_to_exit_enqueued_ms']}, price->bus {ex['price_to_bus_ms']}, "
              f"bus->exit {ex['bus_to_exit_enqueued_ms']}, feed receipt->exit "
              f"{ex['feed_receipt_to_exit_enqueued_ms']} ms; CPU % {ex['cpu_pct']}")
    save("feed", {"phases": phases, "sim_feed_interval_ms": args.feed_interval_ms,
                  "how": "real feed process, simulator process, redis-server; published = "
                         "Redis PUBLISH calls/s; price->bus from POST /sim/price to the tick "
                         "on the bus (includes the simulator's cadence)"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
