"""Working live orders finished without a worker waiting on them.

A job places its orders and returns at once: no worker sits idle holding a fill. The
verdict comes from the order-update stream (the consumer process applies Angel's messages)
or, while an account's stream is down, from this follower: at most one RQ job per account at
a time (`arm` takes the account's lease), which reads the account's order book once
(`order_updates.catch_up`, inside the shared 1/s limiter), applies what changed — a fill
opens its position, an exit's fill closes one, an alert whose orders are all final gets its
verdict — and runs again a moment later while anything is still working.

With the stream up it reads nothing (the consumer has it) but keeps looking: if the
consumer dies, its "up" key expires within seconds and the next round reads the book. After
`FOLLOW_FOR_S` the follower stops; the consumer's catch-up on (re)connect and recovery on
restart still finish anything left.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import redis
from rq import Queue

from ats_app.engine.broker.factory import broker_for
from ats_app.engine.core.fsm import OrderStatus, is_terminal
from ats_app.engine.execution import contracts, order_updates
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Order
from ats_app.engine.store.queueing import connection
from ats_app.engine.store.redis_conn import ALERTS_QUEUE

log = logging.getLogger("ats.follower")

FOLLOW_JOB = "ats_app.engine.execution.follower.follow_account"
# Seconds between rounds: a market order fills a few hundred ms after Angel accepts it, so
# the first rounds come quickly; a resting order is looked at every few seconds.
ROUND_DELAYS_S = (1, 1, 1, 2, 2, 3)
LATER_DELAY_S = 5
FOLLOW_FOR_S = 15 * 60
LEASE_S = 60  # a follower lost with its worker frees the account this soon


def lease_key(account_id: int) -> str:
    return f"ats:follow:lease:{account_id}"


def dirty_key(account_id: int) -> str:
    return f"ats:follow:dirty:{account_id}"


def delay_after(round_no: int) -> int:
    return ROUND_DELAYS_S[round_no] if round_no < len(ROUND_DELAYS_S) else LATER_DELAY_S


def arm(conn: redis.Redis, user_id: int, account_id: int) -> bool:
    """Make sure a follower runs for the account (True: this call enqueued it). Cheap and
    safe to repeat: every order left working calls it."""
    try:
        pipe = conn.pipeline(transaction=False)
        pipe.set(dirty_key(account_id), "1", ex=LEASE_S)
        pipe.set(lease_key(account_id), str(time.time()), nx=True, ex=LEASE_S)
        _, leased = pipe.execute()
        if not leased:
            return False  # a follower is on it and will see the dirty mark
        _enqueue(conn, user_id, account_id, 0, time.time(), delay=0)
        return True
    except redis.RedisError as exc:  # the consumer's fallback poll and recovery remain
        log.warning("could not arm the follower of account %s: %s", account_id, exc)
        return False


def _enqueue(conn: redis.Redis, user_id: int, account_id: int, round_no: int,
             since: float, *, delay: int) -> None:
    q = Queue(ALERTS_QUEUE, connection=conn)
    args = (user_id, account_id, round_no, since)
    job_id = f"follow-{account_id}-{int(since * 1000)}-{round_no}"
    if delay <= 0:
        q.enqueue(FOLLOW_JOB, *args, job_id=job_id, result_ttl=60, failure_ttl=3600)
    else:
        q.enqueue_in(timedelta(seconds=delay), FOLLOW_JOB, *args, job_id=job_id,
                     result_ttl=60, failure_ttl=3600)


def _followed(orders: list[Order]) -> list[Order]:
    """Orders on their way to a fill. Not a stop resting at the broker: it works for hours,
    and its fill comes by the stream, the exit job or `broker_stops.sync_resting`."""
    return [o for o in orders if not is_terminal(OrderStatus(o.status)) and o.purpose != "STOP"]


def follow_account(user_id: int, account_id: int, round_no: int = 0,
                   since: float | None = None) -> str:
    """The RQ job: one round for one account's working orders."""
    conn = connection()
    since = since or time.time()
    conn.delete(dirty_key(account_id))
    pending = _followed(order_updates.unfinished(user_id, account_id))
    changed = 0
    if pending and not order_updates.stream_up(conn, account_id):
        with session_scope() as s:
            broker = broker_for(s, user_id, account_id, paper=False, redis=conn)
        base_url = getattr(getattr(getattr(broker, "session", None), "creds", None),
                           "base_url", None)
        changed = order_updates.catch_up(
            broker.orders, user_id=user_id, account_id=account_id, conn=conn,
            tick_of=lambda o: contracts.tick_for(base_url, o.exchange, o.symbol_token))
    still = _followed(order_updates.unfinished(user_id, account_id))
    if still and time.time() - since < FOLLOW_FOR_S:
        conn.set(lease_key(account_id), str(time.time()), ex=LEASE_S)
        _enqueue(conn, user_id, account_id, round_no + 1, since, delay=delay_after(round_no))
        return f"{len(still)} working, {changed} changed; again in {delay_after(round_no)} s"
    conn.delete(lease_key(account_id))
    if conn.exists(dirty_key(account_id)):  # an order left working since this round read
        arm(conn, user_id, account_id)
    if still:
        log.warning("account %s: %d order(s) still working after %d s; left to the order-"
                    "update stream", account_id, len(still), FOLLOW_FOR_S)
    return f"done, {changed} changed"
