"""Turning an exit decision into exactly one sell job, and finishing claims a crash left behind.

`claim_exit` is `claim_for_exit` plus the reason, in the same UPDATE: the reason
must be durable together with the claim, because a monitor killed between the claim and the
enqueue leaves an EXITING position that only the database remembers, and the restarted monitor
has to enqueue that sell with the right reason. The trigger level and the observed price go
into the audit event of the same transaction.

Only exits this module claimed (monitor reasons) are re-enqueued by `finish_pending_exits`:
a sell alert or a manual exit claims inside its own job, which RQ retries by itself. An exit
job that failed for good (every retry spent) is re-run whoever claimed the position: it stays
EXITING, unsold, until a run finishes it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import redis
import sqlalchemy as sa
from sqlmodel import Session, col, select, update

from ats_app.engine.exits import rules as exits
from ats_app.engine.store import audit
from ats_app.engine.store.db import joined, session_scope, write_promptly
from ats_app.engine.store.models import Order, Position
from ats_app.engine.store.queueing import (
    connection,
    enqueue_exit,
    existing_jobs,
    failed_job_ids,
    rerun_if_failed,
)
from ats_app.engine.store.redis_conn import EXITS_QUEUE

log = logging.getLogger("ats.monitor")

MONITOR_REASONS = (
    exits.ExitReason.STOP_LOSS.value,
    exits.ExitReason.TARGET.value,
    exits.ExitReason.TRAILING_STOP.value,
)


def exit_job_id(position_id: int) -> str:
    return f"exit-{position_id}"  # queueing.enqueue_exit's id


@dataclass(frozen=True)
class ExitClaim:
    """One position an exit decision wants out. `trail` (peak, stop in paise) is saved with
    the claim: the periodic trail flush never writes a closed position, so the peak that led
    to a trailing exit is recorded here."""

    position_id: int
    decision: exits.ExitDecision
    user_id: int | None = None
    trail: tuple[int, int | None] | None = None


_POSITIONS = Position.__table__  # type: ignore[attr-defined]


def _claim_statement(trail: bool) -> sa.Update:
    values: dict[str, Any] = {"status": "EXITING", "exit_reason": sa.bindparam("reason")}
    if trail:
        values.update(peak_price_paise=sa.bindparam("peak"), stop_paise=sa.bindparam("stop"))
    return (sa.update(_POSITIONS).where(_POSITIONS.c.id == sa.bindparam("pid"))
            .where(_POSITIONS.c.status == "OPEN").values(**values))


# Built once (Core, bind parameters): the claim is on the tick-to-exit path, where building
# and cache-keying an ORM update per position cost more than the database's work.
_CLAIM = {False: _claim_statement(False), True: _claim_statement(True)}


def claim_exits(claims: Sequence[ExitClaim], *, source: str) -> list[int]:
    """Each position OPEN -> EXITING with its reason, atomically; returns the ids won (the
    others someone else got first). One transaction for all: a tick that crosses the stop of
    every position on its instrument (many users, one strategy) commits once, not per
    position. If the commit fails, none is claimed. On SQLite a worker's write lock is waited
    out in 0.5 ms steps, not the busy handler's sleeps (`db.write_promptly`)."""

    def claim(conn: sa.Connection) -> list[int]:
        won = []
        for c in claims:
            params: dict[str, Any] = {"pid": c.position_id, "reason": c.decision.reason.value}
            if c.trail is not None:
                params.update(peak=c.trail[0], stop=c.trail[1])
            if conn.execute(_CLAIM[c.trail is not None], params).rowcount != 1:
                continue
            audit.insert(
                conn,
                "position.exit_triggered",
                user_id=c.user_id,
                subject=str(c.position_id),
                reason=c.decision.reason.value,
                trigger=str(c.decision.trigger_price),
                observed=str(c.decision.observed_price),
                price_source=source,
                at=c.decision.at.isoformat(),
            )
            won.append(c.position_id)
        return won

    return write_promptly(claim)


def claim_exit(position_id: int, decision: exits.ExitDecision, *, source: str,
               user_id: int | None = None, trail: tuple[int, int | None] | None = None) -> bool:
    """One position's `claim_exits`: False when someone else got it first."""
    return bool(claim_exits([ExitClaim(position_id, decision, user_id, trail)], source=source))


def finish_pending_exits(conn: redis.Redis, *, owned: Collection[int] | None = None,
                         busy: Collection[int] = ()) -> list[int]:
    """Enqueue the sell of every monitor-claimed EXITING position that has no exit job, and
    re-run any EXITING position's exit job that failed for good.

    `owned` limits this to one shard's positions; `busy` is the live set of claims this
    process is making right now (checked after the query, so a claim that committed before
    it is either still busy or already has its job). A FILLED exit order without its close
    is also finished by the job.
    """
    with session_scope() as s:
        rows = s.exec(
            select(Position.id, Position.exit_reason, Position.user_id)
            .where(Position.status == "EXITING")
        ).all()
    enqueued = []
    failed = failed_job_ids(EXITS_QUEUE, conn) if rows else set()
    present = existing_jobs([exit_job_id(pid) for pid, _, _ in rows if pid is not None], conn)
    for pid, reason, user_id in rows:
        assert pid is not None
        if (owned is not None and pid not in owned) or pid in busy:
            continue
        if exit_job_id(pid) in failed and rerun_if_failed(exit_job_id(pid), conn):
            audit.record_now("position.exit_rerun", user_id=user_id, subject=str(pid),
                             reason=reason, why="its exit job failed after every retry")
            enqueued.append(pid)
            continue
        if reason not in MONITOR_REASONS or exit_job_id(pid) in present:
            continue
        enqueue_exit(pid, reason or exits.ExitReason.STOP_LOSS.value, conn)
        audit.record_now("position.exit_requeued", user_id=user_id, subject=str(pid),
                         reason=reason, why="EXITING with no exit job (monitor restarted?)")
        enqueued.append(pid)
    if enqueued:
        log.warning("enqueued the sells of %d claimed exit(s) left behind: %s",
                    len(enqueued), enqueued)
    return enqueued


def exit_orders(position_id: int) -> list[Order]:
    with session_scope() as s:
        return list(
            s.exec(
                select(Order).where(Order.position_id == position_id)
                .where(Order.purpose == "EXIT")
            ).all()
        )


# --- claiming for an exit, one position or all of a user's ----------------------------

def claim_for_exit(position_id: int, *, session: Session | None = None) -> Position | None:
    """OPEN -> EXITING atomically: of two racing exit triggers only one gets the position."""
    with joined(session) as s:
        result = s.exec(
            update(Position)
            .where(col(Position.id) == position_id)  # type: ignore[call-overload]
            .where(col(Position.status) == "OPEN")
            .values(status="EXITING")
        )
        if result.rowcount != 1:
            return None
        return s.get(Position, position_id, populate_existing=True)


def exit_all(user_id: int, reason: str, conn: redis.Redis | None = None) -> list[int]:
    """Claim every OPEN position of the user and enqueue its exit (the exit job sells it)."""
    conn = conn or connection()
    with session_scope() as s:
        ids = [p for p in s.exec(select(Position.id).where(Position.user_id == user_id)
                                 .where(Position.status == "OPEN")).all() if p is not None]
    exited = []
    for pid in ids:
        if claim_for_exit(pid) is None:
            continue  # someone else is exiting or closed it
        enqueue_exit(pid, reason, conn)
        exited.append(pid)
    if exited:
        audit.record_now("risk.exit_all", user_id=user_id, reason=reason, positions=exited)
    return exited
