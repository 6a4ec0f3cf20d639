"""The Redis connection: one URL for the app, the RQ worker and the monitor."""

from __future__ import annotations

from functools import lru_cache

import redis

from ats_app.engine.core.config import settings

# Queue names: alerts must never wait behind slow work, so they get their own queue.
ALERTS_QUEUE = "alerts"
EXITS_QUEUE = "exits"
DEFAULT_QUEUE = "default"
ALL_QUEUES = (EXITS_QUEUE, ALERTS_QUEUE, DEFAULT_QUEUE)  # exits first: protect open money
NOTIFY_QUEUE = "notifications"  # served by its own worker, never by the trading workers

MONITOR_HEARTBEAT_KEY = "ats:monitor:heartbeat"


def redis_url() -> str:
    url = settings().redis_url
    if not url:
        raise RuntimeError(
            "REDIS_URL is not set and no embedded Redis is running "
            "(start the system with `make run`, or set REDIS_URL)"
        )
    return url


def connect(url: str | None = None, **kwargs: object) -> redis.Redis:
    return redis.Redis.from_url(url or redis_url(), **kwargs)  # type: ignore[arg-type]


@lru_cache(maxsize=8)
def _shared(url: str) -> redis.Redis:
    return connect(url)


def shared() -> redis.Redis:
    """This process's connection (one per URL), for callers with none of their own."""
    return _shared(redis_url())


def forget_shared() -> None:
    """Drop the cached connections (after REDIS_URL changed)."""
    _shared.cache_clear()
