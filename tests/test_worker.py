"""The RQ worker class the trading workers run (`engine.services.worker.TradingWorker`)."""

from __future__ import annotations

import importlib

import pytest
import redis
from rq import Queue

from ats_app.engine.services.worker import TradingJob, TradingWorker
from ats_app.engine.store.queueing import current_job_path
from ats_app.engine.store.redis_conn import ALERTS_QUEUE


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
