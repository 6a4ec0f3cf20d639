"""A generation in Redis that every commit touching watched tables replaces.

Caches of what the webhook ack reads (`intake.link_cache`) keep the generation they were
filled under and compare it with the current one in a round trip they make anyway. The hook
lives here, beside the tables, so that a commit in *any* process (dashboard, CLI, a worker's
kill switch) bumps it, whether or not that process ever imports the cache itself.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import redis
from sqlalchemy import event
from sqlalchemy.orm import Session

from ats_app.engine.store.redis_conn import shared

log = logging.getLogger("ats.link_cache")

GEN_KEY = "ats:links:gen"
MAX_AGE_S = 5.0  # how long a cached entry may be served without a bump (a bump can be lost)


def current_generation(conn: redis.Redis) -> bytes:
    """The generation now; a missing key (a fresh or restarted Redis) starts a new one."""
    gen = conn.get(GEN_KEY)
    if gen is None:
        conn.set(GEN_KEY, uuid.uuid4().hex, nx=True)
        gen = conn.get(GEN_KEY)
    return gen or b""


def bump(conn: redis.Redis) -> None:
    """Invalidate every process's cached links."""
    conn.set(GEN_KEY, uuid.uuid4().hex)


# --- the bump around every commit that changes what the ack reads --------------------------

_WATCHED: tuple[type, ...] = ()


def _touches_links(session: Session) -> bool:
    return any(
        isinstance(obj, _WATCHED) for obj in (*session.new, *session.dirty, *session.deleted)
    )


def _before_flush(session: Session, _ctx: Any, _instances: Any) -> None:
    if _touches_links(session):
        session.info["ats_links_changed"] = True


def _before_commit(session: Session) -> None:
    # Also before: a request between this commit and the bump after it would otherwise be
    # served the old link (or a running bot) from cache. One that reads the database before
    # the commit lands caches the old state again, under this generation: the bump after the
    # commit replaces it. (The commit's own final flush has not run yet: look at the session.)
    if session.info.get("ats_links_changed") or _touches_links(session):
        session.info["ats_links_changed"] = True
        _bump_now()


def _after_commit(session: Session) -> None:
    if session.info.pop("ats_links_changed", False):
        _bump_now()


def _bump_now() -> None:
    try:
        bump(shared())
    except (redis.RedisError, RuntimeError) as exc:  # down, or none configured (a bare CLI)
        # Never fail a commit; caches then expire on their own.
        log.warning("link cache not invalidated (%s): entries expire in %ss", exc, MAX_AGE_S)


def _after_rollback(session: Session) -> None:
    session.info.pop("ats_links_changed", None)


def watch(watched: tuple[type, ...]) -> None:
    """Bump the generation around commits that add, change or delete any of `watched`."""
    global _WATCHED
    _WATCHED = watched
    if not event.contains(Session, "before_flush", _before_flush):
        event.listen(Session, "before_flush", _before_flush)
        event.listen(Session, "before_commit", _before_commit)
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_rollback", _after_rollback)


