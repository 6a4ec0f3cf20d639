"""A job for the scale-out test: records which worker ran which job in PostgreSQL."""

from __future__ import annotations

import os
import time

import psycopg


def record(dsn: str, nonce: str) -> int:
    """One row per run. Our workers are SimpleWorkers: the job runs in the worker process."""
    worker_pid = os.getpid()
    time.sleep(0.02)  # a job that takes a moment, so the backlog is shared out
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO scale_probe (nonce, pid) VALUES (%s, %s)", (nonce, worker_pid))
    return worker_pid
