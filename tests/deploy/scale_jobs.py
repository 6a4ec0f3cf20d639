"""A job for the scale-out test: records which worker ran which job in PostgreSQL."""

from __future__ import annotations

import os

import psycopg


def record(dsn: str, nonce: str) -> int:
    """One row per run. RQ runs each job in a forked work horse: its parent is the worker."""
    worker_pid = os.getppid()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO scale_probe (nonce, pid) VALUES (%s, %s)", (nonce, worker_pid))
    return worker_pid
