"""What the webhook ack needs of a link, cached per process and invalidated through Redis.

The ack reads the same few link fields for every alert; reading them from the database each
time cost a third of the ack. Each cached entry carries the *generation* it was read under: a
random value in Redis (`GEN_KEY`) that every commit touching a link, a bot state or a user
replaces. The ack reads the generation in the Redis round trip it makes anyway (the rate
limit), so a change made in any process (dashboard, CLI, a worker's kill switch) is seen by the
very next alert. An entry also expires after `MAX_AGE_S`: a change whose bump was lost (Redis
unreachable at that moment) is still picked up within seconds. Without Redis the cache is not
used at all.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger("ats.link_cache")

GEN_KEY = "ats:links:gen"
MAX_AGE_S = 5.0
MAX_ENTRIES = 4096


@dataclass(frozen=True)
class LinkFacts:
    """A link as the ack sees it (the secret decrypted once, when cached)."""

    id: int
    user_id: int
    secret: bytes
    enabled: bool
    bot_running: bool


@dataclass(frozen=True)
class _Entry:
    facts: LinkFacts | None  # None: no such token (cached too: a flood of a dead link is cheap)
    generation: bytes
    loaded_at: float


class LinkCache:
    def __init__(self, max_age_s: float = MAX_AGE_S, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self.max_age_s = max_age_s
        self.max_entries = max_entries

    def peek(self, token: str) -> _Entry | None:
        entry = self._entries.get(token)
        if entry is None or time.monotonic() - entry.loaded_at > self.max_age_s:
            return None
        return entry

    def put(self, token: str, facts: LinkFacts | None, generation: bytes) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()  # crude but bounded; refilling costs one read per link
            self._entries[token] = _Entry(facts, generation, time.monotonic())


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
    from ats_app.engine.queueing import connection  # lazy: queueing imports the DB layer

    try:
        bump(connection())
    except (redis.RedisError, RuntimeError) as exc:  # down, or none configured (a bare CLI)
        # Never fail a commit; caches then expire on their own.
        log.warning("link cache not invalidated (%s): entries expire in %ss", exc, MAX_AGE_S)


def _after_rollback(session: Session) -> None:
    session.info.pop("ats_links_changed", None)


def install(watched: tuple[type, ...]) -> None:
    """Bump the generation around commits that add, change or delete any of `watched`."""
    global _WATCHED
    _WATCHED = watched
    if not event.contains(Session, "before_flush", _before_flush):
        event.listen(Session, "before_flush", _before_flush)
        event.listen(Session, "before_commit", _before_commit)
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_rollback", _after_rollback)


