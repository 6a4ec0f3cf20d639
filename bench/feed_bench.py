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
- CPU % (of one core) of the feed, the simulator and redis-server meanwhile.

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
    from ats_app.engine.scrip_master import SCRIP_MASTER_PATH

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

    from ats_app.engine.db import session_scope
    from ats_app.engine.models import Position

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


def _latency(r: Any, sim: str, opt: dict[str, Any], samples: int) -> tuple[list[float], int]:
    from ats_app.engine.tickbus import decode_tick, tick_channel

    ps = r.pubsub(ignore_subscribe_messages=True)
    ps.subscribe(tick_channel("NFO", opt["token"]))
    rng = random.Random(11)
    out: list[float] = []
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
                    out.append((time.time() - posted) * 1000)
                    break
            else:
                missed += 1
    ps.close()
    return out, missed


def run(instruments: list[int], per: int, seconds: float, samples: int,
        interval_ms: int = DEFAULT_FEED_INTERVAL_MS) -> dict[str, Any]:
    import redis
    from cryptography.fernet import Fernet

    from ats_app.engine import db, embedded_redis, users
    from ats_app.engine.config import reset_settings_cache
    from ats_app.engine.positions import POSITIONS_CHANNEL

    tmp = Path(tempfile.mkdtemp(prefix="ats-feed-bench-"))
    port = _free_port()
    env = {"ATS_ENV": "dev", "ATS_DATA_DIR": str(tmp / "data"), "ATS_IP_ECHO_URL": "",
           "ATS_SECRET_KEY": Fernet.generate_key().decode(), "ATS_SIMULATOR": "true",
           "SIMULATOR_PORT": str(port), "DATABASE_URL": f"sqlite:///{tmp / 'ats.db'}"}
    os.environ.update(env)
    redis_proc, url = embedded_redis.start(tmp / "data")
    os.environ["REDIS_URL"] = url
    child_env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sim_proc = subprocess.Popen(
        [sys.executable, "-m", "ats_app.engine.simulator", "--port", str(port),
         "--feed-interval-ms", str(interval_ms)], cwd=tmp, env=child_env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    feed_proc: subprocess.Popen[bytes] | None = None
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
            lat, missed = _latency(r, sim, chosen[len(chosen) // 2], samples)
            phase = {"instruments": len(chosen), "positions": len(chosen) * per,
                     "offered_ticks_per_s": len(chosen) * 1000 // interval_ms,
                     "published_ticks_per_s": round(rate), "cpu_pct": cpu,
                     "price_to_bus_ms": {"p50": round(percentile(lat, 50), 1),
                                         "p95": round(percentile(lat, 95), 1),
                                         "max": round(max(lat, default=float("nan")), 1),
                                         "n": len(lat), "missed": missed}}
            phases[f"{len(chosen)} instruments"] = phase
            print(json.dumps(phase), flush=True)
        r.close()
    finally:
        for p in (feed_proc, sim_proc, redis_proc):
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
    p.add_argument("--feed-interval-ms", type=int, default=DEFAULT_FEED_INTERVAL_MS,
                   help="the simulator's cadence (a packet per token per interval); lower it "
                        "to offer more ticks than 10/s per instrument")
    args = p.parse_args(argv)
    counts = [int(x) for x in args.instruments.split(",") if x.strip()]
    phases = run(counts, args.positions_per_instrument, args.seconds, args.samples,
                 args.feed_interval_ms)
    print(f"\n{'feed process':18} {'offered/s':>9} {'published/s':>11} {'feed CPU %':>10} "
          f"{'sim CPU %':>9} {'p50 ms':>7} {'p95 ms':>7} {'miss':>4}")
    for name, ph in phases.items():
        lat = ph["price_to_bus_ms"]
        print(f"{name:18} {ph['offered_ticks_per_s']:>9} {ph['published_ticks_per_s']:>11} "
              f"{ph['cpu_pct'].get('feed')!s:>10} {ph['cpu_pct'].get('simulator')!s:>9} "
              f"{lat['p50']:>7} {lat['p95']:>7} {lat['missed']:>4}")
    save("feed", {"phases": phases, "sim_feed_interval_ms": args.feed_interval_ms,
                  "how": "real feed process, simulator process, redis-server; published = "
                         "Redis PUBLISH calls/s; price->bus from POST /sim/price to the tick "
                         "on the bus (includes the simulator's cadence)"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
