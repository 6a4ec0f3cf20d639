"""Liveness of the pieces the system needs: database, Redis, RQ worker, monitor."""

from __future__ import annotations

import json
import time

import redis
import sqlalchemy as sa

from ats_app.engine.market.tickbus import FEED_STATUS_KEY, STALE_KEY
from ats_app.engine.store.db import get_engine
from ats_app.engine.store.redis_conn import MONITOR_HEARTBEAT_KEY, connect

MONITOR_STALE_SECONDS = 5.0


def feed_state(conn: redis.Redis) -> str:
    """live (a socket connected), down (process up, no socket), or off (no feed process).

    Nothing to watch is normal: without open positions the feed keeps only the index spots'
    socket, or none when it has no source for them."""
    raw = conn.get(FEED_STATUS_KEY)
    if not raw:
        return "off"
    connections = json.loads(raw).get("connections", [])
    if not connections:
        return "idle"
    return "live" if any(c.get("state") == "connected" for c in connections) else "down"


def stale_instruments(conn: redis.Redis) -> list[str]:
    """Instruments whose feed went quiet (exits on them use REST prices meanwhile)."""
    return sorted(k.decode() if isinstance(k, bytes) else k for k in conn.hkeys(STALE_KEY))


def check() -> dict[str, bool]:
    result = {"database": False, "redis": False, "worker": False, "monitor": False, "feed": False}
    try:
        with get_engine().connect() as c:
            c.execute(sa.text("SELECT 1"))
        result["database"] = True
    except Exception:
        pass
    try:
        from rq import Worker

        conn = connect(socket_timeout=1, socket_connect_timeout=1)
        conn.ping()
        result["redis"] = True
        result["worker"] = len(Worker.all(connection=conn)) > 0
        beat = conn.get(MONITOR_HEARTBEAT_KEY)
        if beat:
            result["monitor"] = time.time() - json.loads(beat)["at"] < MONITOR_STALE_SECONDS
        result["feed"] = feed_state(conn) in ("live", "idle")
        conn.close()
    except Exception:
        pass
    return result
