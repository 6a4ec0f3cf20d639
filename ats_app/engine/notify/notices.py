"""Notifications to the trader's phone and inbox (Telegram, e-mail, ... through Apprise).

The order path calls `emit(user_id, Event.ORDER_FILLED, side=..., ...)`. emit never raises
and never talks to a notification service: it formats the message, asks Redis in one
round trip whether the user wants it (and whether an identical failure was just sent), and
enqueues `send_job` on the `notifications` RQ queue. A dead Telegram or SMTP server so only
ever costs the notifications queue retries, never an order or an exit.

    emit(uid, Event.ORDER_FILLED, side="BUY", symbol="NIFTY25NOV24000CE", quantity=75,
         price_paise=12350, paper=True, once=f"order-{order.id}")

`once=` makes a notice idempotent (a retried pipeline job does not notify twice); the
failure events in `RATE_LIMITED_EVENTS` are sent at most once per RATE_LIMIT_SECONDS
per identical message.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any

import redis
from rq import Queue, get_current_job
from rq.job import Retry

from ats_app.engine.notify.messages import RATE_LIMITED_EVENTS, Event, format_message
from ats_app.engine.notify.targets import (
    cfg_key,
    connection,
    event_switches,
    refresh_cache,
    send_now,
    target_urls,
)

__all__ = ["NOTIFY_QUEUE", "Event", "NotificationFailed", "emit", "preload", "send_job"]

log = logging.getLogger("ats.notify")

from ats_app.engine.store.redis_conn import NOTIFY_QUEUE  # noqa: E402 - one name, one place

SEND_JOB = "ats_app.engine.notify.notices.send_job"
RATE_LIMIT_SECONDS = 600  # identical failure notices: at most one per 10 minutes
ONCE_TTL = 3 * 24 * 3600  # how long a once= key remembers it was sent
JOB_TIMEOUT = 120  # seconds one send may take (several targets, slow SMTP)
JOB_TTL = 6 * 3600  # a notice still queued after 6 hours is dropped, not sent late
RESULT_TTL = 3600
FAILURE_TTL = 7 * 24 * 3600
# Back-off between retries; about 1.3 hours in all before a notice is given up.
RETRY_INTERVALS = [10, 30, 120, 600, 3600]
DONE_TTL = 2 * 24 * 3600  # per-job record of targets already served, so retries skip them

# One round trip decides: -1 no cached switches, 0 unwanted, 2 suppressed by the gate, 1 send.
_GATE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end
if #KEYS > 1 then
  if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then return 2 end
end
return 1
"""
_scripts: dict[int, Any] = {}


class NotificationFailed(RuntimeError):
    """At least one target did not accept the message; RQ retries the job."""


def _gate_script(conn: redis.Redis) -> Any:
    script = _scripts.get(id(conn))
    if script is None:
        script = _scripts[id(conn)] = conn.register_script(_GATE_LUA)
    return script


def _gate(user_id: int, event: Event, title: str, body: str, once: str | None) -> tuple[str, int]:
    if once is not None:
        return f"ats:notify:once:{user_id}:{event.value}:{once}", ONCE_TTL
    digest = hashlib.sha256(f"{title}\n{body}".encode()).hexdigest()[:24]
    return f"ats:notify:rl:{user_id}:{event.value}:{digest}", RATE_LIMIT_SECONDS


def _decide(conn: redis.Redis, user_id: int, event: Event, gate: tuple[str, int] | None) -> int:
    keys = [cfg_key(user_id)] + ([gate[0]] if gate else [])
    args = [event.value, gate[1] if gate else 0]
    verdict = int(_gate_script(conn)(keys=keys, args=args))
    if verdict == -1:  # switches not cached (expired, changed, Redis restarted): rebuild once
        refresh_cache(user_id, conn)
        verdict = int(_gate_script(conn)(keys=keys, args=args))
    return verdict


def emit(user_id: int, event: Event | str, *, once: str | None = None, **data: Any) -> str | None:
    """Queue a notice of `event` for `user_id` if wanted. Returns the job id, or None.

    Never raises: a notification problem must not fail the order or exit that caused it.
    """
    try:
        ev = Event(event)
        title, body = format_message(ev, data)
        gate = (
            _gate(user_id, ev, title, body, once)
            if once is not None or ev in RATE_LIMITED_EVENTS
            else None
        )
        conn = connection()
        verdict = _decide(conn, user_id, ev, gate)
        if verdict != 1:
            log.debug("notify: %s for user %s not sent (verdict %s)", ev.value, user_id, verdict)
            return None
        job = Queue(NOTIFY_QUEUE, connection=conn).enqueue_call(
            SEND_JOB,
            args=(user_id, ev.value, title, body),
            job_id=f"notify-{user_id}-{uuid.uuid4().hex}",
            timeout=JOB_TIMEOUT,
            ttl=JOB_TTL,
            result_ttl=RESULT_TTL,
            failure_ttl=FAILURE_TTL,
            retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
        )
        return job.id
    except Exception:
        log.warning("notify: could not queue %r for user %s", event, user_id, exc_info=True)
        return None


def preload() -> None:
    """Load Apprise's plugins now. Call in the RQ worker's parent before it forks work-horses:
    each notification job then skips ~0.15 s of plugin discovery."""
    import apprise

    apprise.Apprise.instantiate("json://localhost", suppress_exceptions=True)


def send_job(user_id: int, event: str, title: str, body: str) -> dict[str, int]:
    """RQ job: send one notice to each of the user's enabled targets.

    The switches and targets are read again here (they may have changed since emit). Targets
    that already took the message are remembered per job, so RQ's retries after a partial
    failure re-send only to the ones that failed: each target gets the message once.
    """
    from ats_app.engine.store.db import session_scope

    with session_scope() as s:
        if not event_switches(s, user_id).get(event, True):
            return {"targets": 0, "sent": 0, "already_sent": 0}
        targets = target_urls(s, user_id)
    job = get_current_job()
    conn = job.connection if job is not None else connection()
    done_key = f"ats:notify:done:{job.id}" if job is not None else None
    done = {int(x) for x in conn.smembers(done_key)} if done_key else set()
    sent, failed = 0, []
    for target_id, hint, url in targets:
        if target_id in done:
            continue
        try:
            ok = send_now(url, title, body)
        except Exception:  # a plugin bug must not hide the other targets' results
            log.warning("notify: target %s (%s) raised", target_id, hint, exc_info=True)
            ok = False
        if ok:
            sent += 1
            if done_key:
                pipe = conn.pipeline()
                pipe.sadd(done_key, target_id)
                pipe.expire(done_key, DONE_TTL)
                pipe.execute()
        else:
            failed.append(f"{target_id} ({hint})")
    if failed:
        # Only masked hints in the message: RQ keeps it in the failed job for a week.
        raise NotificationFailed(
            f"{event}: {len(failed)} of {len(targets)} targets failed: {', '.join(failed)}"
        )
    return {"targets": len(targets), "sent": sent, "already_sent": len(done)}
