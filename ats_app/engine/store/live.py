"""Live updates for the dashboard over Redis pub/sub (the monitor publishes, the UI listens).

Channel per user: `ats:live:{user_id}`. Messages are JSON objects with a `type`:
- `pnl`: {"type": "pnl", "position_id", "ltp", "pnl", "stop", "peak", "at"} (throttled by
  the publisher, at most a few per second per position);
- `position`: {"type": "position", "position_id", "event": "opened" | "closed" | ...}.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import redis


def channel(user_id: int) -> str:
    return f"ats:live:{user_id}"


def publish(conn: redis.Redis, user_id: int, message: dict[str, Any]) -> None:
    # The dashboard is a viewer: a Redis hiccup must never fail the trading code calling this.
    with contextlib.suppress(redis.RedisError):
        conn.publish(channel(user_id), json.dumps(message, default=str))
