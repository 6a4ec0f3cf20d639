"""RQ job entry points: thin, importable, taking ids and plain values only."""

from __future__ import annotations

import os
import socket


def ping(nonce: str) -> dict[str, str | int]:
    """Health check: proves a worker is consuming the queue (and which one answered)."""
    return {"nonce": nonce, "pid": os.getpid(), "host": socket.gethostname()}
