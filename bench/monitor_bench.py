"""Exit engine: ticks/s evaluated with 1,000 open positions on 500 instruments, and the time
from a tick being published to its sell job being enqueued.

Run: ``.venv/bin/python -m bench.monitor_bench [--seconds 5] [--exits 200]``. A private
redis-server and SQLite database; positions are rows like the pipeline writes them (SL 5 %,
target 10 %, trailing 5 %), two per instrument. Three measurements:

1. engine: `Monitor.on_tick` called directly (the evaluation itself, no Redis);
2. pub/sub: the real monitor loop in a thread, ticks published as fast as another process
   can (pipelined) on the 500 channels; ticks evaluated per second by the monitor;
3. tick -> exit enqueued: exit-triggering ticks published one at a time (each exits both
   positions of its instrument) while a background publisher sends 10,000 ticks/s;
   latency = enqueue time - the tick's `at` (stamped when published), p50/p99.

Targets (issue 8): >= 50,000 ticks/s evaluated; p99 < 10 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.results import percentile, save

ROOT = Path(__file__).resolve().parents[1]
N_INSTRUMENTS, PER_INSTRUMENT = 500, 2
ENTRY = 20000  # paise


def _token(i: int) -> str:
    return str(50000 + i)


def _publisher(url: str, seconds: float, rate: float) -> None:
    """Child process: publish random in-range ticks (rate 0: as fast as possible)."""
    import redis

    from ats_app.engine.market.tickbus import encode_tick, tick_channel

    r = redis.Redis.from_url(url)
    rng = random.Random(5)
    channels = [tick_channel("NFO", _token(i)) for i in range(N_INSTRUMENTS)]
    end = time.monotonic() + seconds
    batch, sent, start = 500, 0, time.monotonic()
    while time.monotonic() < end:
        pipe = r.pipeline(transaction=False)
        now = time.time()
        for _ in range(batch):
            price = ENTRY + 5 * rng.randint(-40, 40)  # within +-1 %: never an exit
            pipe.publish(channels[rng.randrange(N_INSTRUMENTS)], encode_tick(price, now))
        pipe.execute()
        sent += batch
        if rate:
            ahead = sent / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
    print(json.dumps({"sent": sent}), flush=True)


def _setup(tmp: Path) -> str:
    from cryptography.fernet import Fernet

    from ats_app.engine.services import embedded_redis

    os.environ.update({"ATS_ENV": "dev", "ATS_DATA_DIR": str(tmp / "data"),
                       "ATS_SECRET_KEY": Fernet.generate_key().decode(),
                       "ATS_SIMULATOR": "false", "ATS_IP_ECHO_URL": "",
                       "DATABASE_URL": f"sqlite:///{tmp / 'ats.db'}"})
    proc, url = embedded_redis.start(tmp / "data")
    os.environ["REDIS_URL"] = url
    _REDIS.append(proc)
    from ats_app.engine.core.config import reset_settings_cache
    from ats_app.engine.store import db
    from ats_app.engine.store.models import Position
    from ats_app.engine.tenants import users

    reset_settings_cache()
    db.upgrade()
    with db.session_scope() as s:
        uid = users.create_user(s, "bench", "password123", "B", "M").id
        for i in range(N_INSTRUMENTS * PER_INSTRUMENT):
            s.add(Position(user_id=uid, exchange="NFO", symbol=f"BENCH{i}",
                           symbol_token=_token(i % N_INSTRUMENTS), quantity=50,
                           entry_price_paise=ENTRY, initial_stop_paise=19000, stop_paise=19000,
                           target_paise=22000, peak_price_paise=ENTRY, trailing_stop_pct=5.0,
                           tick_size_paise=5))
    return url


_REDIS: list[subprocess.Popen[Any]] = []


def _engine(seconds: float) -> float:
    from ats_app.engine.market.feed_sources import SourceResolver
    from ats_app.engine.services.monitor import Monitor

    m = Monitor()
    m._load(SourceResolver(), set())
    m._drain_inbox()
    rng = random.Random(1)
    keys = [f"NFO:{_token(i)}" for i in range(N_INSTRUMENTS)]
    ticks = [(keys[rng.randrange(N_INSTRUMENTS)], ENTRY + 5 * rng.randint(-40, 40))
             for _ in range(100_000)]
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        now = time.time()
        for key, price in ticks:
            m.on_tick(key, price, now)
        n += len(ticks)
    rate = n / (time.perf_counter() - start)
    m.pubsub.close()
    return rate


def _spawn_publisher(url: str, seconds: float, rate: float) -> subprocess.Popen[str]:
    code = f"from bench.monitor_bench import _publisher; _publisher({url!r}, {seconds}, {rate})"
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _live(seconds: float, n_exits: int) -> dict[str, Any]:
    import redis

    from ats_app.engine.market.tickbus import encode_tick, tick_channel
    from ats_app.engine.services.monitor import Monitor

    url = os.environ["REDIS_URL"]
    m = Monitor()
    runner = threading.Thread(target=m.run, daemon=True)
    runner.start()
    deadline = time.monotonic() + 20
    while len(m.watch.by_instrument) < N_INSTRUMENTS or m.pubsub.subscribed is False:
        assert time.monotonic() < deadline, "monitor did not load the positions"
        time.sleep(0.05)
    time.sleep(0.5)
    # 2. throughput: as fast as a publisher process can send.
    before = m.ticks_seen
    pub = _spawn_publisher(url, seconds, 0)
    time.sleep(0.5)
    c0, t0 = m.ticks_seen, time.perf_counter()
    time.sleep(seconds - 1.0)
    rate = (m.ticks_seen - c0) / (time.perf_counter() - t0)
    sent = json.loads(pub.communicate(timeout=30)[0])["sent"]
    deadline = time.monotonic() + 30  # drain the backlog before measuring latency
    while m.ticks_seen - before < sent and time.monotonic() < deadline:
        time.sleep(0.1)
    # 3. latency under a steady 10,000 ticks/s of background load.
    background = _spawn_publisher(url, n_exits * 0.02 + 2, 10_000)
    time.sleep(0.5)
    r = redis.Redis.from_url(url)
    m.latencies.clear()
    m.claim_times.clear()
    for i in range(n_exits):
        r.publish(tick_channel("NFO", _token(i)), encode_tick(18000, time.time()))
        time.sleep(0.02)
    deadline = time.monotonic() + 20
    while m.exits_enqueued < n_exits * PER_INSTRUMENT and time.monotonic() < deadline:
        time.sleep(0.05)
    background.communicate(timeout=30)
    m.stop()
    runner.join(20)
    lat = [x * 1000 for x in m.latencies]
    own = [x * 1000 for x in m.claim_times]
    return {"pubsub_ticks_per_s": round(rate), "published": sent,
            "exits_enqueued": m.exits_enqueued,
            "tick_to_exit_enqueued_ms": {"p50": round(percentile(lat, 50), 2),
                                         "p99": round(percentile(lat, 99), 2),
                                         "max": round(max(lat, default=float("nan")), 2),
                                         "n": len(lat), "background_ticks_per_s": 10_000},
            "claim_and_enqueue_ms": {"p50": round(percentile(own, 50), 2),
                                     "p99": round(percentile(own, 99), 2)}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--exits", type=int, default=200, help="instruments to exit (x2 positions)")
    args = p.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="ats-monitor-bench-"))
    try:
        _setup(tmp)
        engine_rate = _engine(args.seconds)
        live = _live(args.seconds, min(args.exits, N_INSTRUMENTS))
    finally:
        for proc in _REDIS:
            proc.terminate()
            proc.wait(10)
    result = {"positions": N_INSTRUMENTS * PER_INSTRUMENT, "instruments": N_INSTRUMENTS,
              "engine_ticks_per_s": round(engine_rate), **live,
              "targets": {"ticks_per_s": 50_000, "p99_ms": 10}}
    print(json.dumps(result, indent=2))
    save("monitor", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
