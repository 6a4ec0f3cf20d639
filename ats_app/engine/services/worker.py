"""The RQ worker process (`python -m ats_app.cli worker`)."""

from __future__ import annotations

import logging
import os

import redis
from redis.client import Pipeline
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.utils import import_attribute

from ats_app.engine.core.config import settings
from ats_app.engine.services.processes import freeze_startup_heap
from ats_app.engine.store.queueing import current_job_path
from ats_app.engine.store.redis_conn import ALERTS_QUEUE, ALL_QUEUES, NOTIFY_QUEUE, connect


class TradingJob(Job):
    """A job whose function is looked up under today's layout (`current_job_path`)."""

    @property
    def func(self):  # type: ignore[no-untyped-def]
        if self.func_name is None or self.instance:
            return super().func
        return import_attribute(current_job_path(self.func_name))


class TradingWorker(SimpleWorker):
    """RQ's SimpleWorker (jobs run in this process, see `run_worker`), its heartbeat sent in
    one round trip. RQ sends a heartbeat's three commands one at a time, up to three times a
    job; pipelined, RQ's own time per back-to-back job fell from 3.2 to 2.6 ms (500 no-op
    jobs, 3 runs each way), which is what a burst of alerts waits behind."""

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        if pipeline is not None:  # already part of one of RQ's own pipelines
            super().heartbeat(timeout, pipeline=pipeline)
            return
        with self.connection.pipeline(transaction=False) as pipe:
            super().heartbeat(timeout, pipeline=pipe)
            pipe.execute()


def run_worker(burst: bool = False, queue_names: list[str] | None = None) -> bool:
    """Trading queues by default. Notifications get their own worker (`--queues
    notifications`) so a hanging notification service never delays an order or an exit."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    _lower_priority(settings().worker_nice)
    conn = connect()
    names = queue_names or list(ALL_QUEUES)
    _ensure_schedules(conn)
    if NOTIFY_QUEUE in names:
        from ats_app.engine.notify import notices

        notices.preload()  # load Apprise's plugins once, not per message
    if ALERTS_QUEUE in names:
        _warm_order_path()
    freeze_startup_heap()
    queues = [Queue(name, connection=conn, job_class=TradingJob) for name in names]
    # A SimpleWorker runs jobs in this process instead of forking one per job: no fork cost on
    # the order path, and the instrument index and broker sessions stay cached across jobs.
    # A crash still loses nothing: the job is abandoned, then retried by registry cleanup,
    # and every job is idempotent.
    worker = TradingWorker(queues, connection=conn, job_class=TradingJob)
    # RQ logs three INFO lines per job (~1 ms of a 2-core machine's CPU per job, next to the
    # webhook): it logs warnings and errors only, and each job logs one line of its own,
    # with its outcome (`entry.handle_alert`, `exit_order.handle_exit`).
    logging.getLogger("ats.worker").info("worker %s on %s", worker.name, ", ".join(names))
    # The scheduler lets jobs be enqueued for later (risk/day schedules); RQ elects one
    # scheduler among workers, so several workers still run each schedule once.
    return worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")


def _warm_order_path() -> None:
    """Import the order path and load the instrument indexes now, not inside the first
    alert's job (~0.5 s of imports, then a scrip-master parse per server)."""
    from ats_app.engine.execution import contracts, entry
    from ats_app.engine.store.db import session_scope

    try:
        with session_scope() as s:
            servers = entry.instrument_servers(s)
        for url in servers:
            contracts.index_for(url)
    except Exception as exc:  # not fatal: the first job that needs one loads it
        logging.getLogger("ats.worker").warning("instrument indexes not preloaded: %s", exc)


def _lower_priority(nice: int) -> None:
    """Step back from the webhook and the monitor when cores are short (see ATS_WORKER_NICE)."""
    current = os.nice(0)
    if nice > current:
        os.nice(nice - current)


def _ensure_schedules(conn: redis.Redis) -> None:
    """Pre-open login, square-off and loss watch: scheduled idempotently at every start."""
    from ats_app.engine.risk.schedules import ensure_scheduled

    try:
        ensure_scheduled(conn)
    except Exception:  # a worker must still serve orders if scheduling fails
        logging.getLogger("ats.worker").exception("could not ensure the day's schedules")
