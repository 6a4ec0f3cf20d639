"""The RQ worker process (`python -m ats_app.cli worker`).

A job of the order path spends most of its life waiting on Angel One (100-300 ms a call),
not on the CPU. So a worker process runs several jobs at once: `ATS_WORKER_THREADS` job
threads (default 4), each an RQ SimpleWorker of its own, registered, heart-beating and
retried like any worker. A job waiting for its broker's answer holds one thread, never the
process: the next alert starts at once on another. The main thread's worker owns the signals
and RQ's scheduler; its stop (SIGTERM, warm) stops the others after their current job.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

import redis
from redis.client import Pipeline
from rq import Queue, SimpleWorker
from rq.exceptions import StopRequested
from rq.job import Job
from rq.timeouts import TimerDeathPenalty
from rq.utils import import_attribute
from rq.worker import WorkerStatus

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


# A running job's entry in RQ's started registry lasts JOB_TTL_S past its last beat, and each
# worker process beats for every job it runs every JOB_BEAT_S (`JobKeeper`). RQ's
# SimpleWorker gives a job its whole timeout + 60 s (180 s) with no beat in between, so a
# worker killed mid-sell left that exit waiting three minutes for its retry, and an entry
# caught so came back refused as stale. Recovery (every 30 s) now finds it within a minute.
JOB_BEAT_S = 5.0
JOB_TTL_S = 30


class TradingWorker(SimpleWorker):
    """RQ's SimpleWorker (jobs run in this process, see `run_worker`), its heartbeat sent in
    one round trip. RQ sends a heartbeat's three commands one at a time, up to three times a
    job; pipelined, RQ's own time per back-to-back job fell from 3.2 to 2.6 ms (500 no-op
    jobs, 3 runs each way), which is what a burst of alerts waits behind."""

    # A job's time limit by a timer, not SIGALRM: only the main thread can take a signal,
    # and job threads run jobs too.
    death_penalty_class = TimerDeathPenalty
    job_threads: list[JobThread]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.job_threads = []
        self.burst = False

    def _install_signal_handlers(self) -> None:
        # The job threads start only now, after RQ has forked its scheduler: a fork copies
        # the forking thread alone, and a lock another thread held would stay held. A stop
        # arriving meanwhile is noted and taken once they run: RQ's handler raises
        # StopRequested wherever the main thread is, and raised here, outside RQ's loop, it
        # skipped RQ's teardown, so the scheduler process lived on and the worker waited on
        # it for ever at exit.
        noted: list[int] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda n, _frame: noted.append(n))
        for other in self.job_threads:
            other.start(self.burst)
        try:
            super()._install_signal_handlers()
            if noted:
                self.handle_warm_shutdown_request()
                self._stop_requested = True  # RQ's loop stops before its first job
        except StopRequested:  # a stop in the instant RQ's handler came in
            self._stop_requested = True

    def handle_warm_shutdown_request(self) -> None:
        super().handle_warm_shutdown_request()
        for other in self.job_threads:
            other.stop_after_current_job()

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return JOB_TTL_S  # kept alive by the process's JobKeeper while the job runs

    def beat_running_job(self) -> None:
        """Renew the running job's registry entry (RQ's own beat for a forked job)."""
        if not self.executions:
            return  # idle: nothing to renew, and no Redis read
        execution = next(iter(dict(self.executions).values()), None)
        job = self.get_current_job() if execution is not None else None
        if execution is not None and job is not None:
            self.maintain_heartbeats(job, execution)

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        if pipeline is not None:  # already part of one of RQ's own pipelines
            super().heartbeat(timeout, pipeline=pipeline)
            return
        with self.connection.pipeline(transaction=False) as pipe:
            super().heartbeat(timeout, pipeline=pipe)
            pipe.execute()


class JobThread(TradingWorker):
    """One more job slot of a worker process: a worker in a thread of its own."""

    # An idle thread waits on the queue this long at a time (RQ: worker_ttl - 15), so a
    # stop reaches it within seconds; its heartbeat follows each wait.
    TTL_S = 18

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, worker_ttl=self.TTL_S, **kwargs)
        self.thread: threading.Thread | None = None
        self.worked = False

    def _install_signal_handlers(self) -> None:
        pass  # signals reach the main thread's worker only, which stops this one

    def stop_after_current_job(self) -> None:
        self._stop_requested = True

    def dequeue_job_and_maintain_ttl(self, timeout: int | None,
                                     max_idle_time: int | None = None) -> Any:
        if timeout is None:  # burst: one look, no wait
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        # RQ waits here until a job comes, whatever the wait's timeout; a stop must not wait
        # for the next alert. Each wait ends at the timeout (as "idle"), then the stop is read.
        while not self._stop_requested:
            found = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time=timeout)
            if found is not None:
                return found
        return None

    def start(self, burst: bool) -> None:
        self.burst = burst
        self.thread = threading.Thread(target=self._run, name=f"job-{self.name[:8]}",
                                       daemon=True)  # a cold stop takes them down with it
        self.thread.start()

    def _run(self) -> None:
        try:
            self.worked = self.work(burst=self.burst, logging_level="WARNING")
        finally:
            if not self.burst and not self._stop_requested:
                # It quit on its own (Redis gone for good, say): stop the whole process so
                # that its supervisor starts a full one, rather than serve with a slot less.
                logging.getLogger("ats.worker").error("job thread %s quit; stopping", self.name)
                os.kill(os.getpid(), signal.SIGTERM)

    def join(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def busy(self) -> bool:
        return self.get_state() == WorkerStatus.BUSY


class JobKeeper:
    """A thread of the worker process that beats for every job its workers run."""

    def __init__(self, workers: list[TradingWorker]) -> None:
        self.workers = workers
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="job-keeper", daemon=True)

    def start(self) -> JobKeeper:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(JOB_BEAT_S + 1)

    def _run(self) -> None:
        while not self.stopping.wait(JOB_BEAT_S):
            for w in self.workers:
                try:
                    w.beat_running_job()
                except Exception as exc:  # Redis away, the job just ended: next beat
                    logging.getLogger("ats.worker").warning("job beat of %s: %s", w.name, exc)


def run_worker(burst: bool = False, queue_names: list[str] | None = None,
               threads: int | None = None) -> bool:
    """Trading queues by default. Notifications get their own worker (`--queues
    notifications`) so a hanging notification service never delays an order or an exit.
    `threads`: jobs run at once in this process (default ATS_WORKER_THREADS)."""
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
    # A SimpleWorker runs jobs in this process instead of forking one per job: no fork cost on
    # the order path, and the instrument index and broker sessions stay cached across jobs.
    # A crash still loses nothing: the job is abandoned, then retried by registry cleanup,
    # and every job is idempotent.
    worker = TradingWorker(_queues(names, conn), connection=conn, job_class=TradingJob)
    worker.job_threads = [
        JobThread(_queues(names, c), connection=c, job_class=TradingJob)
        for c in (connect() for _ in range((threads or settings().worker_threads) - 1))]
    # RQ logs three INFO lines per job (~1 ms of a 2-core machine's CPU per job, next to the
    # webhook): it logs warnings and errors only, and each job logs one line of its own,
    # with its outcome (`entry.handle_alert`, `exit_order.handle_exit`).
    logging.getLogger("ats.worker").info("worker %s on %s, %d job threads", worker.name,
                                         ", ".join(names), 1 + len(worker.job_threads))
    worker.burst = burst  # its job threads start once its own work begins
    keeper = JobKeeper([worker, *worker.job_threads]).start()
    # The scheduler lets jobs be enqueued for later (risk/day schedules); RQ elects one
    # scheduler among workers, so several workers still run each schedule once.
    try:
        worked = worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
    except StopRequested:  # a stop before RQ's loop began: its teardown stops the scheduler
        worker.teardown()
        worked = False
    finally:
        _stop_job_threads(worker.job_threads, stop=not burst)
        keeper.stop()
    return worked or any(other.worked for other in worker.job_threads)


def _stop_job_threads(threads: list[JobThread], *, stop: bool) -> None:
    """After the main worker stopped: every thread ends after its current job and its queue
    wait (burst: once it finds the queues empty itself, so what its last job enqueued still
    runs). A thread is left to die with the process only when Redis is gone (RQ then retries
    the connection without end): it cannot have taken a job then. Left while its wait could
    still pop a job, that job would be in no queue and no registry."""
    if stop:
        for other in threads:
            other.stop_after_current_job()
    idle_until = time.monotonic() + JobThread.TTL_S - 15 + 2  # one queue wait, and a margin
    probe = connect(socket_timeout=1, socket_connect_timeout=1)
    for other in threads:
        while other.alive():
            if not other.busy() and time.monotonic() > idle_until and not _up(probe):
                break
            other.join(0.1)


def _up(conn: redis.Redis) -> bool:
    try:
        return bool(conn.ping())
    except redis.RedisError:
        return False


def _queues(names: list[str], conn: redis.Redis) -> list[Queue]:
    return [Queue(name, connection=conn, job_class=TradingJob,
                  death_penalty_class=TimerDeathPenalty) for name in names]


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
