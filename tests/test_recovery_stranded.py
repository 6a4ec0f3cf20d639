"""A job popped by a worker that died before recording it is in no queue and no registry,
its hash still "queued": recovery must see it as lost, not as present.

Found by the soak (seed 2807): an alert accepted at the instant Redis was killed stayed
ACCEPTED for good. A worker had popped its job (RQ pops from several queues with BLPOP,
keeping no copy) and lost Redis before marking it started; recovery found the job's hash,
took it for present, and never enqueued it again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis
from rq import Queue
from starlette.testclient import TestClient

from ats_app.engine.execution.recovery import requeue_lost_alerts
from ats_app.engine.store.queueing import STRANDED_AFTER, existing_jobs
from ats_app.engine.store.redis_conn import ALERTS_QUEUE
from tests.test_webhook import _alert, _post, client, link

__all__ = ["client", "link"]  # fixtures shared with test_webhook


def _pop_as_a_dying_worker(conn: redis.Redis, job_id: str, age: timedelta) -> None:
    """What a worker that popped the job and then lost Redis leaves behind."""
    assert conn.lrem(f"rq:queue:{ALERTS_QUEUE}", 0, job_id) == 1
    enqueued = (datetime.now(UTC) - age).replace(tzinfo=None).isoformat() + "Z"
    conn.hset(f"rq:job:{job_id}", "enqueued_at", enqueued)


def test_a_job_popped_and_never_started_is_enqueued_again(
        client: TestClient, link: dict, redis_url: str) -> None:
    conn = redis.Redis.from_url(redis_url)
    stranded, fresh, waiting = (
        _post(client, link, _alert(link, id=tag)).json()["alert_id"]
        for tag in ("stranded", "fresh", "waiting"))
    _pop_as_a_dying_worker(conn, f"alert-{stranded}", STRANDED_AFTER * 2)
    # Popped a moment ago: a worker is about to mark it started; not touched.
    _pop_as_a_dying_worker(conn, f"alert-{fresh}", timedelta(seconds=1))
    # Old but still in its queue (a backlog): present.
    conn.hset(f"rq:job:alert-{waiting}", "enqueued_at",
              (datetime.now(UTC) - STRANDED_AFTER * 2).replace(tzinfo=None).isoformat() + "Z")
    ids = [f"alert-{a}" for a in (stranded, fresh, waiting)]
    assert existing_jobs(ids, conn) == {f"alert-{fresh}", f"alert-{waiting}"}
    assert requeue_lost_alerts(conn) == [stranded]
    assert f"alert-{stranded}" in Queue(ALERTS_QUEUE, connection=conn).job_ids
    assert requeue_lost_alerts(conn) == []  # back in its queue: present now
