"""One-time download links: the page asks, the backend streams the file to the browser.

The dashboard's state cannot stream a large body over its websocket without freezing the
page, so it stores what to export under a random token (Redis, 60 s, used once) and sends
the browser to `GET /download/{token}`. The token stands in for the session: it names the
user and the filter it was made for, nothing else.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import redis

TTL_SECONDS = 60


def _key(token: str) -> str:
    return f"ats:download:{token}"


def issue(conn: redis.Redis, user_id: int, kind: str, params: dict[str, Any]) -> str:
    token = secrets.token_urlsafe(24)
    conn.set(_key(token), json.dumps({"user_id": user_id, "kind": kind, "params": params}),
             ex=TTL_SECONDS)
    return token


def redeem(conn: redis.Redis, token: str) -> dict[str, Any] | None:
    """The request behind `token`, once; None when unknown, expired or already used."""
    if not token or len(token) > 64:
        return None
    raw = conn.getdel(_key(token))
    return json.loads(raw) if raw else None
