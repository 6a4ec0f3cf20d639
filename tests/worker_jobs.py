"""Jobs for the worker tests: each says when and where it ran."""

from __future__ import annotations

import os
import threading
import time


def wait(seconds: float) -> dict[str, object]:
    """A job that waits as an order job waits on the broker (no CPU)."""
    started = time.time()
    time.sleep(seconds)
    return {"pid": os.getpid(), "thread": threading.get_ident(), "started": started,
            "ended": time.time()}
