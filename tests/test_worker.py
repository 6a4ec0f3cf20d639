"""The RQ worker class the trading workers run (`engine.services.worker.TradingWorker`)."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from rq import Queue, Retry, Worker
from rq.job import Job
from rq.registry import StartedJobRegistry

from ats_app.engine.execution.recovery import cleanup_abandoned_jobs
from ats_app.engine.services.worker import JOB_BEAT_S, JOB_TTL_S, TradingJob, TradingWorker
from ats_app.engine.store.queueing import current_job_path
from ats_app.engine.store.redis_conn import ALERTS_QUEUE

ROOT = Path(__file__).resolve().parents[1]


class _Counting(redis.Redis):
    """Counts single commands (each its own round trip); pipelines do not pass here."""

    sent: list[str]

    def execute_command(self, *args: object, **options: object) -> object:
        self.sent.append(str(args[0]))
        return super().execute_command(*args, **options)


def test_a_heartbeat_is_one_round_trip_and_still_lands(redis_url: str) -> None:
    conn = _Counting.from_url(redis_url)
    conn.sent = []
    worker = TradingWorker([Queue(ALERTS_QUEUE, connection=conn)], connection=conn)
    conn.sent.clear()
    worker.heartbeat(timeout=123)
    assert conn.sent == []  # RQ's own: HSET, EXPIRE, EXPIRE, one round trip each
    plain = redis.Redis.from_url(redis_url)
    assert plain.hget(worker.key, "last_heartbeat") is not None
    assert 0 < plain.ttl(worker.key) <= 123


def test_the_worker_runs_jobs(redis_url: str) -> None:
    conn = redis.Redis.from_url(redis_url)
    queue = Queue("default", connection=conn)
    job = queue.enqueue("ats_app.engine.services.jobs.ping", "n-1")
    assert TradingWorker([queue], connection=conn).work(burst=True, logging_level="WARNING")
    assert job.get_status(refresh=True) == "finished"
    assert job.return_value()["nonce"] == "n-1"


def test_a_job_queued_under_an_old_module_path_still_runs(redis_url: str) -> None:
    """Jobs in Redis from before the engine's package layout (queued alerts, scheduled runs,
    failed jobs awaiting a rerun) name their function by its old path: after an upgrade the
    worker must still run them, not fail them on an import."""
    conn = redis.Redis.from_url(redis_url)
    queue = Queue("default", connection=conn, job_class=TradingJob)
    job = queue.enqueue("ats_app.engine.jobs.ping", "old-path")
    worker = TradingWorker([queue], connection=conn, job_class=TradingJob)
    assert worker.work(burst=True, logging_level="WARNING")
    assert job.get_status(refresh=True) == "finished"
    assert job.return_value()["nonce"] == "old-path"


@pytest.mark.parametrize(("old", "new"), [
    ("ats_app.engine.pipeline.handle_alert", "ats_app.engine.execution.entry.handle_alert"),
    ("ats_app.engine.pipeline.handle_exit", "ats_app.engine.execution.exit_order.handle_exit"),
    ("ats_app.engine.notify.send_job", "ats_app.engine.notify.notices.send_job"),
    ("ats_app.engine.schedules.run_square_off", "ats_app.engine.risk.schedules.run_square_off"),
    ("ats_app.engine.execution.entry.handle_alert", "ats_app.engine.execution.entry.handle_alert"),
])
def test_old_job_paths_name_todays_functions(old: str, new: str) -> None:
    assert current_job_path(old) == new
    module, _, name = new.rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))


def _worker(redis_url: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "ats_app.cli", "worker", *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _until(done: Callable[[], bool], seconds: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _finished(jobs: list[Job]) -> bool:
    return all(j.get_status(refresh=True) == "finished" for j in jobs)


def _ready_worker(redis_url: str, threads: int) -> tuple[redis.Redis, Queue, subprocess.Popen]:
    """A flushed Redis, the alerts queue, and a worker process with every job thread
    registered."""
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    proc = _worker(redis_url, "--threads", str(threads))
    try:
        _until(lambda: len(Worker.all(connection=conn)) == threads, 60, proc)
    except BaseException:
        proc.kill()
        proc.wait(10)
        raise
    return conn, Queue(ALERTS_QUEUE, connection=conn), proc


def test_one_worker_process_runs_as_many_jobs_at_once_as_it_has_threads(redis_url: str) -> None:
    """Four jobs waiting 1.5 s each, as order jobs wait on Angel: one process with 4 job
    threads runs them side by side (one after another they would take 6 s)."""
    conn, queue, proc = _ready_worker(redis_url, 4)
    try:
        assert {w.pid for w in Worker.all(connection=conn)} == {proc.pid}
        jobs = [queue.enqueue("tests.worker_jobs.wait", 1.5) for _ in range(4)]
        _until(lambda: _finished(jobs), 30, proc)
        runs = [j.return_value() for j in jobs]
        assert {r["pid"] for r in runs} == {proc.pid}
        assert len({r["thread"] for r in runs}) == 4
        # every job started before any had ended: all four at once
        assert max(r["started"] for r in runs) < min(r["ended"] for r in runs)
    finally:
        proc.terminate()
        proc.wait(30)


def _expiry(conn: redis.Redis, queue: Queue) -> float:
    (entry,) = conn.zrange(StartedJobRegistry(queue=queue).key, 0, -1, withscores=True)
    return float(entry[1])


def test_a_killed_workers_job_is_retried_within_half_a_minute(redis_url: str) -> None:
    """A running job's registry entry is renewed every few seconds and lasts half a minute:
    a SIGKILLed worker's job is retried by the next recovery pass after that, not after
    its whole timeout + 60 s (three minutes for an order job, which came back stale)."""
    conn, queue, proc = _ready_worker(redis_url, 2)
    try:
        job = queue.enqueue("tests.worker_jobs.wait", 60, job_timeout=120, retry=Retry(max=1))
        _until(lambda: job.get_status(refresh=True) == "started", 30, proc)
        first = _expiry(conn, queue)
        assert first - time.time() <= JOB_TTL_S + 1  # not 120 + 60 s
        time.sleep(2 * JOB_BEAT_S + 1)
        assert _expiry(conn, queue) >= first + JOB_BEAT_S  # renewed while it runs
        proc.kill()
        proc.wait(10)
        cleanup_abandoned_jobs(conn, at=time.time() + JOB_TTL_S + 1)
        assert job.get_status(refresh=True) == "queued"  # retried: back on its queue
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_a_warm_stop_lets_every_threads_job_finish_then_exits(redis_url: str) -> None:
    conn, queue, proc = _ready_worker(redis_url, 3)
    try:
        jobs = [queue.enqueue("tests.worker_jobs.wait", 2.0) for _ in range(2)]
        _until(lambda: all(j.get_status(refresh=True) == "started" for j in jobs), 30, proc)
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        # the jobs in flight ran to their end, and the idle thread did not hold the exit
        assert _finished(jobs)
        assert time.monotonic() - stopped < 15
        assert Worker.all(connection=conn) == []  # every thread's worker deregistered
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_job_thread_still_enforces_the_jobs_time_limit(redis_url: str) -> None:
    """SIGALRM reaches only the main thread: a job thread's limit is a timer."""
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    queue = Queue(ALERTS_QUEUE, connection=conn)
    jobs = [queue.enqueue("tests.worker_jobs.wait", 30, job_timeout=1) for _ in range(3)]
    proc = _worker(redis_url, "--threads", "3", "--burst")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-3000:]
    assert [j.get_status(refresh=True) for j in jobs] == ["failed"] * 3
    assert all("JobTimeoutException" in (j.latest_result().exc_string or "") for j in jobs)


def test_a_burst_runs_what_its_last_jobs_enqueue(redis_url: str) -> None:
    """A burst worker with two threads: the main thread finds the queue empty while the other
    thread's job is still running; the job that job enqueues as it ends still runs."""
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    queue = Queue(ALERTS_QUEUE, connection=conn)
    queue.enqueue("tests.worker_jobs.wait_then_enqueue", 0.2, "short")
    queue.enqueue("tests.worker_jobs.wait_then_enqueue", 3.0, "long")
    proc = _worker(redis_url, "--threads", "2", "--burst")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-3000:]
    after = [Job.fetch(f"after-{t}", connection=conn) for t in ("short", "long")]
    assert [j.get_status(refresh=True) for j in after] == ["finished", "finished"]
    assert queue.count == 0


_STOPPED_AS_THREADS_START = """
import os, signal, sys
from ats_app.engine.services import worker
start = worker.JobThread.start
def start_after_a_stop(self, burst):
    os.kill(os.getpid(), signal.SIGTERM)  # the operator's stop, as the threads start
    start(self, burst)
worker.JobThread.start = start_after_a_stop
worker.run_worker(threads=3)
"""


def test_a_stop_while_the_job_threads_start_still_ends_the_worker(redis_url: str) -> None:
    """SIGTERM while the job threads were starting raised RQ's StopRequested outside its
    loop: RQ's teardown never ran, its scheduler process lived on, and the worker waited on
    it for ever at exit (a CI run's `proc.wait` timed out)."""
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _STOPPED_AS_THREADS_START], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert proc.returncode == 0, out[-3000:]
    assert "StopRequested" not in out
    assert Worker.all(connection=conn) == []  # the main worker and its threads deregistered
