"""The RQ worker class the trading workers run (`engine.worker.TradingWorker`)."""

from __future__ import annotations

import redis
from rq import Queue

from ats_app.engine.services.worker import TradingWorker
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
