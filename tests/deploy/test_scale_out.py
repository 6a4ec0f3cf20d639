"""The scale-out shape: several workers (as on several hosts) share one Redis and one PostgreSQL.

Three `python -m ats_app.cli worker` processes and two `python -m ats_app.cli monitor` processes
(the production entry commands) run against one Redis and one PostgreSQL. 120 jobs enqueued on
the alerts queue each run exactly once (none lost, none doubled), spread over all three workers.

The job is a probe that writes one row per run; once the alert -> order pipeline is wired, the
same harness should enqueue real alerts and count orders (see docs/deploy-ec2.md, "Past one
machine").
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from cryptography.fernet import Fernet
from rq import Queue, Worker

from ats_app.engine.store.redis_conn import ALERTS_QUEUE, MONITOR_HEARTBEAT_KEY

ROOT = Path(__file__).resolve().parents[2]
JOBS = 120


@pytest.fixture
def shared(pg_server: str, private_redis_url: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    name = f"ats_scale_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = f"{pg_server.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE scale_probe (nonce text NOT NULL, pid int NOT NULL)")
    redis.Redis.from_url(private_redis_url).flushdb()
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("ATS_", "SMARTAPI_", "DATABASE_URL", "REDIS_URL"))}
    env = {**base, "ATS_ENV": "prod", "ATS_SECRET_KEY": Fernet.generate_key().decode(),
           "DATABASE_URL": dsn, "REDIS_URL": private_redis_url,
           "PUBLIC_BASE_URL": "https://ats.example.test"}
    yield dsn, private_redis_url, env
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_three_workers_two_monitors_run_each_job_exactly_once(
    shared: tuple[str, str, dict[str, str]], tmp_path: Path
) -> None:
    dsn, redis_url, env = shared
    migrate = subprocess.run([sys.executable, "-m", "ats_app.cli", "db", "upgrade"], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stderr
    conn = redis.Redis.from_url(redis_url)
    queue = Queue(ALERTS_QUEUE, connection=conn)
    nonces = [uuid.uuid4().hex for _ in range(JOBS)]
    procs: list[subprocess.Popen] = []
    try:
        for i, service in enumerate(["worker"] * 3 + ["monitor"] * 2):
            log = open(tmp_path / f"{service}{i}.log", "w")  # noqa: SIM115 - closed with proc
            procs.append(subprocess.Popen([sys.executable, "-m", "ats_app.cli", service],
                                          cwd=ROOT, env=env, stdout=log,
                                          stderr=subprocess.STDOUT))
        # Enqueued once all three workers wait on the queue, so they compete for one backlog
        # (enqueued earlier, the first worker up on a slow runner could drain it alone).
        # (each process registers one RQ worker per job thread: count processes)
        _until(lambda: len({w.pid for w in Worker.all(connection=conn)}) >= 3, procs,
               tmp_path, "3 worker processes registered")
        for nonce in nonces:
            queue.enqueue("tests.deploy.scale_jobs.record", dsn, nonce)
        _until(lambda: _probes(dsn) >= JOBS and queue.count == 0, procs, tmp_path,
               f"{JOBS} jobs run")
        time.sleep(1.0)  # a doubled run would land now
        with psycopg.connect(dsn) as c:
            rows = c.execute("SELECT nonce, pid FROM scale_probe").fetchall()
        ran = [n for n, _ in rows]
        assert len(ran) == JOBS, f"{len(ran)} runs for {JOBS} jobs\n{_tails(tmp_path)}"
        assert set(ran) == set(nonces)  # none lost, none doubled
        ran_on = {pid for _, pid in rows}
        assert ran_on <= {p.pid for p in procs[:3]}, "a job ran outside the workers"
        assert len(ran_on) >= 2, "the backlog was not shared between workers"
        # The monitors started beside the workers: a beat, and none has exited.
        _until(lambda: conn.get(MONITOR_HEARTBEAT_KEY), procs, tmp_path, "a monitor heartbeat")
        assert all(p.poll() is None for p in procs[3:]), "a monitor exited"
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def _until(done: Callable[[], object], procs: list[subprocess.Popen], tmp_path: Path,
           what: str, seconds: float = 60) -> None:
    """Poll `done`, every process still running, for up to `seconds`."""
    deadline = time.monotonic() + seconds
    while not done():
        assert all(p.poll() is None for p in procs), f"a process exited\n{_tails(tmp_path)}"
        assert time.monotonic() < deadline, f"never: {what}\n{_tails(tmp_path)}"
        time.sleep(0.1)


def _probes(dsn: str) -> int:
    with psycopg.connect(dsn) as c:
        return c.execute("SELECT count(*) FROM scale_probe").fetchone()[0]


def _tails(tmp_path: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in tmp_path.glob("*.log"))
