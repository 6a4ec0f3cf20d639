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
from dataclasses import dataclass

from ats_app.engine.store.generation import GEN_KEY, MAX_AGE_S, bump, current_generation

log = logging.getLogger("ats.link_cache")

MAX_ENTRIES = 4096


@dataclass(frozen=True)
class LinkFacts:
    """A link as the ack sees it (the secret decrypted once, when cached)."""

    id: int
    user_id: int
    secret: bytes
    enabled: bool
    bot_running: bool
    # The instrument servers its jobs resolve on (each account's base_url; None: Angel's
    # master): the ack checks an entry's instrument against those it holds in memory.
    servers: tuple[str | None, ...] = ()


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

__all__ = ["GEN_KEY", "LinkCache", "LinkFacts", "bump", "current_generation"]
