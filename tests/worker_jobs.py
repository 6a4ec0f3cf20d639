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


def wait_then_enqueue(seconds: float, tag: str) -> str:
    """A job that enqueues a follow-up job as it ends (as an exit job arms a follower)."""
    from rq import Queue, get_current_job

    time.sleep(seconds)
    job = get_current_job()
    assert job is not None
    Queue(job.origin, connection=job.connection).enqueue(
        "tests.worker_jobs.wait", 0, job_id=f"after-{tag}")
    return tag
