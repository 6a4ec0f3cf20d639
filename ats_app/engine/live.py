"""Live updates for the dashboard over Redis pub/sub (the monitor publishes, the UI listens).

Channel per user: `ats:live:{user_id}`. Messages are JSON objects with a `type`:
- `pnl`: {"type": "pnl", "position_id", "ltp", "pnl", "stop", "peak", "at"} (throttled by
  the publisher, at most a few per second per position);
- `position`: {"type": "position", "position_id", "event": "opened" | "closed" | ...}.
"""

from __future__ import annotations

import json
from typing import Any

import redis


def channel(user_id: int) -> str:
    return f"ats:live:{user_id}"


def publish(conn: redis.Redis, user_id: int, message: dict[str, Any]) -> None:
    try:
        conn.publish(channel(user_id), json.dumps(message, default=str))
    except redis.RedisError:
        pass  # the dashboard is a viewer; trading never waits on it
