"""Container health checks: `python deploy/healthcheck.py backend|worker|monitor|feed|database`.

Exit status 0 when healthy, 1 otherwise (one line on stderr says why). Used by the Dockerfile's
HEALTHCHECK and docker-compose.yml; runnable as is on a systemd host too.

  backend   GET http://127.0.0.1:$BACKEND_PORT/healthz answers 200 (database and Redis up)
  worker    an RQ worker started on this host (container) is registered in Redis
  monitor   the monitor heartbeat in Redis is fresh
  order-updates  the order-update consumer's status in Redis is fresh
  feed      the market-data feed's status in Redis is fresh
  database  the database answers SELECT 1 (the one-shot migrate service)
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# Run as a script from anywhere: make the project importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MONITOR_STALE_SECONDS = 10.0


def backend() -> str | None:
    port = os.environ.get("BACKEND_PORT", "8000")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=4) as resp:
            return None if resp.status == 200 else f"/healthz answered {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"/healthz answered {exc.code}: {exc.read()[:200]!r}"
    except OSError as exc:
        return f"/healthz unreachable: {exc}"


def worker() -> str | None:
    from rq import Worker

    from ats_app.engine.store.redis_conn import connect

    conn = connect(socket_timeout=3, socket_connect_timeout=3)
    host = socket.gethostname()
    mine = [w for w in Worker.all(connection=conn) if w.hostname == host]
    return None if mine else f"no RQ worker registered from host {host}"


def monitor() -> str | None:
    from ats_app.engine.store.redis_conn import MONITOR_HEARTBEAT_KEY, connect

    beat = connect(socket_timeout=3, socket_connect_timeout=3).get(MONITOR_HEARTBEAT_KEY)
    if not beat:
        return "no monitor heartbeat in Redis"
    age = time.time() - json.loads(beat)["at"]
    return None if age < MONITOR_STALE_SECONDS else f"monitor heartbeat is {age:.0f}s old"


def _fresh_status(key: str, what: str) -> str | None:
    """A process's status key in Redis, written every second, is under 10 s old."""
    from ats_app.engine.store.redis_conn import connect

    status = connect(socket_timeout=3, socket_connect_timeout=3).get(key)
    if not status:
        return f"no {what} status in Redis"
    age = time.time() - json.loads(status)["at"]
    return None if age < MONITOR_STALE_SECONDS else f"{what} status is {age:.0f}s old"


def order_updates() -> str | None:
    from ats_app.engine.services.order_update_stream import STATUS_KEY

    return _fresh_status(STATUS_KEY, "order-update consumer")


def feed() -> str | None:
    from ats_app.engine.market.tickbus import FEED_STATUS_KEY

    return _fresh_status(FEED_STATUS_KEY, "feed")


def database() -> str | None:
    import sqlalchemy as sa

    from ats_app.engine.store.db import get_engine

    with get_engine().connect() as c:
        c.execute(sa.text("SELECT 1"))
    return None


CHECKS = {"backend": backend, "worker": worker, "monitor": monitor,
          "order-updates": order_updates, "feed": feed, "database": database}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in CHECKS:
        print(f"usage: healthcheck.py {'|'.join(CHECKS)}", file=sys.stderr)
        return 2
    try:
        problem = CHECKS[argv[0]]()
    except Exception as exc:  # any failure is "unhealthy"; say which
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        print(f"unhealthy ({argv[0]}): {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
