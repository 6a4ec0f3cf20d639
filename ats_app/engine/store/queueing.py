"""RQ queues and enqueueing: job ids are deterministic so a repeat enqueue is harmless."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta

import redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus, Retry
from rq.registry import FailedJobRegistry

from ats_app.engine.core import clock
from ats_app.engine.store.redis_conn import ALERTS_QUEUE, EXITS_QUEUE, shared

ALERT_JOB_TIMEOUT = 120  # seconds a handle_alert run may take before RQ kills it
RESULT_TTL = 24 * 3600
# By dotted path: the web process enqueues without importing the broker stack.
HANDLE_ALERT = "ats_app.engine.execution.entry.handle_alert"
HANDLE_EXIT = "ats_app.engine.execution.exit_order.handle_exit"
PLACE_BROKER_STOP = "ats_app.engine.execution.broker_stops.place_stop"
MOVE_BROKER_STOP = "ats_app.engine.execution.broker_stops.move_stop"
SYNC_BROKER_STOPS = "ats_app.engine.execution.broker_stops.sync_resting"
FAILURE_TTL = 7 * 24 * 3600  # failed jobs stay visible for a week

# Jobs already in Redis when the engine became packages name their function by its old
# path (queued alerts, scheduled runs, failed jobs awaiting a rerun). The worker runs them
# under the new one, so an upgrade never turns a queued alert into an import error.
LEGACY_JOB_PREFIXES = (
    ("ats_app.engine.pipeline.handle_alert", "ats_app.engine.execution.entry.handle_alert"),
    ("ats_app.engine.pipeline.handle_exit", "ats_app.engine.execution.exit_order.handle_exit"),
    ("ats_app.engine.notify.send_job", "ats_app.engine.notify.notices.send_job"),
    ("ats_app.engine.jobs.", "ats_app.engine.services.jobs."),
    ("ats_app.engine.schedules.", "ats_app.engine.risk.schedules."),
)


def current_job_path(func_name: str) -> str:
    """The function a job names, under today's module layout."""
    for old, new in LEGACY_JOB_PREFIXES:
        if func_name.startswith(old):
            return new + func_name[len(old):]
    return func_name


def connection() -> redis.Redis:
    return shared()


def alert_job_id(alert_id: int, queued_until: datetime | None = None) -> str:
    """The id of the job that carries an alert: its own, or, once it was queued for the
    market open, the one that runs it at that open (`Alert.queued_until`)."""
    if queued_until is None:
        return f"alert-{alert_id}"
    return f"alert-{alert_id}-open-{clock.ist(queued_until):%Y%m%d}"


def enqueue_alert(
    alert_id: int, conn: redis.Redis | None = None, *, queued_until: datetime | None = None
) -> Job:
    """Enqueue an alert's job now, or, with `queued_until` still ahead, for that open."""
    q = Queue(ALERTS_QUEUE, connection=conn or connection())
    # Retrying is safe: handle_alert is idempotent (orders keyed by deterministic ids).
    # Retries go straight back on the queue (no interval): a scheduled retry would wait for
    # RQ's scheduler lock, which a killed worker holds for up to a minute.
    job_id, retry = alert_job_id(alert_id, queued_until), Retry(max=3)
    if queued_until is not None:
        due = clock.wall_clock(queued_until)  # RQ's scheduler runs on the real clock
        if due > datetime.now(UTC):
            return q.enqueue_at(due, HANDLE_ALERT, alert_id, job_id=job_id,  # type: ignore[arg-type]
                                job_timeout=ALERT_JOB_TIMEOUT, result_ttl=RESULT_TTL,
                                failure_ttl=FAILURE_TTL, retry=retry)
    (job,) = _enqueue_now(q, [(HANDLE_ALERT, (alert_id,), job_id, retry)])
    return job


def enqueue_exit(position_id: int, reason: str, conn: redis.Redis | None = None) -> Job:
    (job,) = enqueue_exits([(position_id, reason)], conn)
    return job


def enqueue_exits(sells: Sequence[tuple[int, str]], conn: redis.Redis | None = None) -> list[Job]:
    """The sell jobs of (position id, reason) pairs, in one Redis round trip."""
    q = Queue(EXITS_QUEUE, connection=conn or connection())
    return _enqueue_now(q, [(HANDLE_EXIT, (position_id, reason), f"exit-{position_id}",
                             Retry(max=5)) for position_id, reason in sells])


def enqueue_broker_stop(position_id: int, conn: redis.Redis | None = None) -> Job:
    """Rest a new position's stop at the broker (the exits queue: it protects a position)."""
    q = Queue(EXITS_QUEUE, connection=conn or connection())
    (job,) = _enqueue_now(q, [(PLACE_BROKER_STOP, (position_id,), f"broker-stop-{position_id}",
                               Retry(max=3))])
    return job


def enqueue_broker_stop_moves(moves: Sequence[tuple[int, int]],
                              conn: redis.Redis | None = None) -> list[Job]:
    """Move resting stops up to (position id, stop in paise), in one round trip. One job per
    level: a later, higher one supersedes it, an older one finds nothing to do."""
    if not moves:
        return []
    q = Queue(EXITS_QUEUE, connection=conn or connection())
    return _enqueue_now(q, [(MOVE_BROKER_STOP, (pid, stop), f"broker-stop-{pid}-to-{stop}",
                             Retry(max=1)) for pid, stop in moves])


def enqueue_broker_stop_sync(conn: redis.Redis | None = None) -> Job:
    """Look every resting stop up in its account's book (recovery; one such job at a time)."""
    q = Queue(EXITS_QUEUE, connection=conn or connection())
    (job,) = _enqueue_now(q, [(SYNC_BROKER_STOPS, (), "broker-stops-sync", Retry(max=1))])
    return job


def _enqueue_now(q: Queue, jobs: Sequence[tuple[str, tuple[object, ...], str, Retry]]
                 ) -> list[Job]:
    """Jobs (function, args, id, retry) on `q` in one Redis round trip: `Queue.enqueue` takes
    three (the queue's registration, then the job), and an alert's job waits for them."""
    return q.enqueue_many([
        Queue.prepare_data(func, args=args, job_id=job_id, timeout=ALERT_JOB_TIMEOUT,
                           result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL, retry=retry)
        for func, args, job_id, retry in jobs
    ])


# A job popped from its queue is marked started within milliseconds; one still "queued" this
# long after its enqueue and in no queue list was popped by a worker that died (or lost
# Redis) before recording it: RQ pops from several queues at once with BLPOP, which keeps
# no copy, so such a job is in no queue and no registry and would never run.
STRANDED_AFTER = timedelta(seconds=30)


def existing_jobs(job_ids: Collection[str], conn: redis.Redis,
                  now: datetime | None = None) -> set[str]:
    """Which of these jobs exist and will run or have run — not stranded (see
    STRANDED_AFTER). Two round trips whatever their number: recovery asks about every
    pending alert and claimed exit, and a backlog (workers down) is when there are
    thousands."""
    ids = list(job_ids)
    if not ids:
        return set()
    pipe = conn.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(Job.key_for(job_id), "status", "origin", "enqueued_at")
    rows = dict(zip(ids, pipe.execute(), strict=True))
    present = {job_id for job_id, (status, _, _) in rows.items() if status is not None}
    cutoff = (now or datetime.now(UTC)) - STRANDED_AFTER
    suspects = [job_id for job_id, (status, origin, enqueued) in rows.items()
                if status == b"queued" and origin and _parsed(enqueued) < cutoff]
    if suspects:
        pipe = conn.pipeline(transaction=False)
        for job_id in suspects:
            queue_key = Queue(rows[job_id][1].decode(), connection=conn).key
            pipe.lpos(queue_key, job_id)
            pipe.lpos(f"{queue_key}:intermediate", job_id)
        found = pipe.execute()
        for i, job_id in enumerate(suspects):
            if found[2 * i] is None and found[2 * i + 1] is None:
                present.discard(job_id)
    return present


def _parsed(stamp: bytes | None) -> datetime:
    """RQ's enqueued_at (naive UTC ISO); unreadable or absent counts as just now."""
    try:
        return datetime.fromisoformat(stamp.decode().rstrip("Z")).replace(tzinfo=UTC)  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        return datetime.now(UTC)


# A job that failed for good (its own quick retries spent, e.g. the database was down for all
# of them) may leave an order SUBMITTING or a position EXITING: only a later run reconciles
# it with the broker. Recovery re-runs such a job after a pause, a bounded number of times.
RERUN_PAUSE = timedelta(seconds=30)
MAX_RERUNS = 10
_RERUNS = "ats_reruns"


def failed_job_ids(queue_name: str, conn: redis.Redis) -> set[str]:
    """The ids in a queue's failed registry: one read per recovery pass, so that only those
    jobs are fetched, not every pending alert's."""
    registry = FailedJobRegistry(queue=Queue(queue_name, connection=conn))
    return set(registry.get_job_ids(cleanup=False))


def rerun_if_failed(job_id: str, conn: redis.Redis, *, now: datetime | None = None) -> bool:
    """Put a FAILED job back on its queue (idempotent jobs only); True when it was."""
    try:
        job = Job.fetch(job_id, connection=conn)
    except NoSuchJobError:
        return False
    if job.get_status(refresh=False) != JobStatus.FAILED:
        return False
    now = now or datetime.now(UTC)
    ended = job.ended_at
    if ended is not None and ended.tzinfo is None:
        ended = ended.replace(tzinfo=UTC)  # RQ stores naive UTC
    runs = int(job.meta.get(_RERUNS, 0))
    if runs >= MAX_RERUNS or (ended is not None and now - ended < RERUN_PAUSE):
        return False
    job.meta[_RERUNS] = runs + 1
    job.save_meta()
    job.requeue()
    return True


def reruns(job_id: str, conn: redis.Redis) -> int:
    """How many times recovery has re-run this job."""
    try:
        return int(Job.fetch(job_id, connection=conn).meta.get(_RERUNS, 0))
    except NoSuchJobError:
        return 0
