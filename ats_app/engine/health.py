"""Liveness of the pieces the system needs: database, Redis, RQ worker, monitor."""

from __future__ import annotations

import json
import time

import sqlalchemy as sa

from ats_app.engine.db import get_engine
from ats_app.engine.redis_conn import MONITOR_HEARTBEAT_KEY, connect

MONITOR_STALE_SECONDS = 5.0


def check() -> dict[str, bool]:
    result = {"database": False, "redis": False, "worker": False, "monitor": False}
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
        conn.close()
    except Exception:
        pass
    return result
