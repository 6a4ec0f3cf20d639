"""Nothing accepted is lost: alerts live in the database first, jobs in Redis second.

If Redis lost a job (restarted without persistence, flushed, or was down at enqueue time),
`requeue_lost_alerts` finds accepted alerts with no job and enqueues them again. The job is
idempotent, so enqueueing one that still exists somewhere is harmless; we still skip those.
An alert whose job failed for good (every retry spent) is not finished either: its order may
be SUBMITTING at a broker that has it. Its job is re-run after a pause
(`queueing.rerun_if_failed`); the run reconciles with the broker's order book, never resends.
An entry queued for the market open is carried by that open's job from then on: recovery
looks for that job, and puts it back in the schedule if Redis lost it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import redis
from rq import Queue
from rq.registry import StartedJobRegistry
from sqlmodel import col, select

from ats_app.engine.execution import follower, verdict
from ats_app.engine.store import audit
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Alert, Order, utcnow
from ats_app.engine.store.queueing import (
    alert_job_id,
    connection,
    enqueue_alert,
    existing_jobs,
    failed_job_ids,
    rerun_if_failed,
)
from ats_app.engine.store.redis_conn import ALERTS_QUEUE, ALL_QUEUES

log = logging.getLogger("ats.recovery")

LOOKBACK = timedelta(days=1)
WORKING = ("UNKNOWN", "OPEN", "TRIGGER_PENDING", "PARTIALLY_FILLED", "CANCEL_PENDING")


def requeue_lost_alerts(conn: redis.Redis | None = None) -> list[int]:
    """Re-enqueue accepted/processing alerts whose job vanished or failed for good; returns
    their ids."""
    conn = conn or connection()
    since = utcnow() - LOOKBACK
    with session_scope() as s:
        pending = s.exec(
            select(Alert.id, Alert.user_id, Alert.queued_until)
            .where(col(Alert.status).in_(("ACCEPTED", "PROCESSING", "QUEUED")))
            .where(col(Alert.received_at) >= since)
            .order_by(col(Alert.id))
        ).all()
    requeued = []
    # Once queued for the open, the open's job carries the alert (its first job is done).
    job_ids = {alert_id: alert_job_id(alert_id, queued_until)
               for alert_id, _, queued_until in pending if alert_id is not None}
    failed = failed_job_ids(ALERTS_QUEUE, conn) if pending else set()
    present = existing_jobs(job_ids.values(), conn)
    for alert_id, user_id, queued_until in pending:
        assert alert_id is not None
        job_id = job_ids[alert_id]
        if job_id in failed and rerun_if_failed(job_id, conn):
            audit.record_now("alert.rerun", user_id=user_id, subject=str(alert_id),
                             reason="its job failed after every retry; the alert is unfinished")
            requeued.append(alert_id)
            continue
        if job_id in present:
            continue
        # Lost: back on the queue, or back in the schedule while its open is still ahead.
        enqueue_alert(alert_id, conn, queued_until=queued_until)
        audit.record_now(
            "alert.requeued",
            user_id=user_id,
            subject=str(alert_id),
            reason="job missing from Redis",
        )
        requeued.append(alert_id)
    if requeued:
        log.warning("re-enqueued %d alert(s) whose jobs were lost or failed: %s",
                    len(requeued), requeued)
    rearm_followers(conn)
    settle_placed()
    return requeued


def rearm_followers(conn: redis.Redis) -> int:
    """Placed alerts wait for their working orders' verdict: make sure each account with
    such an order has its follower (a lost follower job, a Redis restart). Returns how many
    accounts were armed afresh."""
    since = utcnow() - LOOKBACK
    with session_scope() as s:
        rows = s.exec(
            select(Order.user_id, Order.account_id).distinct()
            .join(Alert, col(Alert.id) == Order.alert_id)
            .where(Alert.status == "PLACED").where(col(Alert.received_at) >= since)
            .where(col(Order.paper).is_(False)).where(col(Order.account_id).is_not(None))
            .where(col(Order.status).in_(WORKING))
        ).all()
    return sum(follower.arm(conn, user_id, account_id) for user_id, account_id in rows
               if account_id is not None)


def settle_placed() -> list[int]:
    """Placed alerts whose every order is final get their verdict now. Each finished order
    settles the alerts waiting on it, and the job looks once more after writing PLACED;
    this is the backstop for what slips between them (a flood of alerts exiting the same
    positions left a few PLACED with every order filled). Returns the alerts settled."""
    since = utcnow() - LOOKBACK
    with session_scope() as s:
        placed = s.exec(select(Alert.id).where(Alert.status == "PLACED")
                        .where(col(Alert.received_at) >= since)).all()
    settled = [a for a in placed if a is not None and verdict.settle(a) is not None]
    if settled:
        log.warning("gave %d placed alert(s) their verdict late: %s", len(settled), settled)
    return settled


def cleanup_abandoned_jobs(conn: redis.Redis | None = None, at: float | None = None) -> None:
    """Jobs whose worker died (no heartbeat) are retried or failed by RQ's own registry
    cleanup; run it often instead of waiting for a worker's 10-minute maintenance."""
    conn = conn or connection()
    for name in ALL_QUEUES:
        StartedJobRegistry(queue=Queue(name, connection=conn)).cleanup(timestamp=at)
