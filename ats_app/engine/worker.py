"""The RQ worker process (`python -m ats_app.cli worker`)."""

from __future__ import annotations

import logging

from rq import Queue, SimpleWorker

from ats_app.engine.redis_conn import ALL_QUEUES, connect


def run_worker(burst: bool = False) -> bool:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    conn = connect()
    queues = [Queue(name, connection=conn) for name in ALL_QUEUES]
    # SimpleWorker runs jobs in this process instead of forking one per job: no fork cost on
    # the order path, and the instrument index and broker sessions stay cached across jobs.
    # A crash still loses nothing: the job is abandoned, then retried by registry cleanup,
    # and every job is idempotent.
    worker = SimpleWorker(queues, connection=conn)
    # The scheduler lets jobs be enqueued for later (risk/day schedules); RQ elects one
    # scheduler among workers, so several workers still run each schedule once.
    return worker.work(burst=burst, with_scheduler=True)
