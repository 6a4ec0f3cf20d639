"""`reflex run --backend-only` brings up every service the system needs, and stops them all.

Nothing is configured: no REDIS_URL (the embedded redis-server starts), SQLite under the data
directory, a generated key. The RQ worker must actually consume jobs, the monitor must beat.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import redis
from rq import Queue

from ats_app.engine.services import jobs
from ats_app.engine.store.redis_conn import DEFAULT_QUEUE
from tests.reflex_proc import ReflexProcess


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[ReflexProcess]:
    proc = ReflexProcess(tmp_path / "data", backend_only=True)
    proc.start(timeout=180)
    yield proc
    proc.stop()


def _is_ours(p: psutil.Process) -> bool:
    try:
        return p.name() == "redis-server" or "ats_app.cli" in " ".join(p.cmdline())
    except psutil.Error:  # exited or a zombie meanwhile
        return False


def _wait_healthy(backend: ReflexProcess, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        resp = httpx.get(f"{backend.backend}/healthz", timeout=5)
        body = resp.json()
        if all(body[k] for k in ("database", "redis", "worker", "monitor")):
            return body
        time.sleep(0.5)
    raise AssertionError(f"services not healthy: {body}\n{backend.log_tail()}")


def test_backend_starts_embedded_redis_worker_and_monitor_then_stops_them(
    backend: ReflexProcess,
) -> None:
    assert httpx.get(f"{backend.backend}/ping", timeout=5).text.strip('"') == "pong"
    _wait_healthy(backend)
    data = backend.data_dir
    assert (data / "ats.db").exists()  # migrated SQLite default
    url = (data / "redis" / "redis.url").read_text().strip()

    # The worker the backend started consumes a real job from the embedded Redis.
    conn = redis.Redis.from_url(url)
    nonce = uuid.uuid4().hex
    job = Queue(DEFAULT_QUEUE, connection=conn).enqueue(jobs.ping, nonce)
    deadline = time.monotonic() + 30
    while job.get_status(refresh=True) != "finished":
        assert time.monotonic() < deadline, f"job not run: {job.get_status()}"
        time.sleep(0.1)
    assert job.return_value()["nonce"] == nonce

    # The SmartAPI simulator runs too (demo mode), serving its scrip master.
    sim = f"http://127.0.0.1:{backend.simulator_port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{sim}/sim/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "simulator did not come up"
        time.sleep(0.3)

    children = backend.descendants()
    assert sum(_is_ours(p) for p in children) >= 4  # redis-server, worker, monitor, simulator
    backend.stop()  # SIGINT to the process group, as Ctrl-C does
    _gone, alive = psutil.wait_procs(children, timeout=20)
    assert alive == [], f"orphans left after Ctrl-C: {[(p.pid, p.name()) for p in alive]}"


def test_children_die_even_if_backend_is_killed(backend: ReflexProcess) -> None:
    _wait_healthy(backend)
    children = backend.descendants()
    # The backend server process is the parent of our children; kill it without cleanup.
    parents = {p.ppid() for p in children if p.name() == "redis-server"}
    assert len(parents) == 1
    psutil.Process(parents.pop()).kill()
    ours = [p for p in children if _is_ours(p)]
    assert len(ours) >= 3  # redis-server, worker, monitor
    _, alive = psutil.wait_procs(ours, timeout=20)
    assert alive == [], f"orphans after SIGKILL: {[(p.pid, p.cmdline()) for p in alive]}"
