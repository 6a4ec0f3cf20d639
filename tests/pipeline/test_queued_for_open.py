"""An entry queued for the market open is carried by the open's job (`alert-{id}-open-DATE`)
from then on. Recovery must look after that job: put it back when Redis lost it, re-run it
when it failed for good — never leave the alert waiting forever."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry
from sqlmodel import select

from ats_app.engine.core.config import reset_settings_cache
from ats_app.engine.execution.recovery import requeue_lost_alerts
from ats_app.engine.store import queueing
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Alert, Position
from ats_app.engine.tenants import webhooks
from tests.pipeline.test_failed_jobs import _actions, _allow, _refuse
from tests.pipeline.test_pipeline import _orders, _post, _run_burst_worker

OPEN_JOB_SUFFIX = "-open-20261203"  # Thursday's 09:15 IST open, after Wednesday's close


def _queued_alert(world: dict, monkeypatch: pytest.MonkeyPatch) -> int:
    """A paper entry posted after Wednesday's close on a link that queues it for the open."""
    monkeypatch.setenv("ATS_FAKE_NOW", "2026-12-02T16:00:00+05:30")
    reset_settings_cache()
    with session_scope() as s:
        link, secret = webhooks.create_link(
            s, world["user"], name="queued", strategy_id=None, stop_loss_pct=5,
            target_pct=None, trailing_stop_pct=None, paper=True, queue_outside_hours=True,
            accounts=[])
    alert_id = _post((link.token, secret), id="after-close")["alert_id"]
    _run_burst_worker()
    assert Job.fetch(f"alert-{alert_id}", connection=redis.Redis.from_url(
        os.environ["REDIS_URL"])).return_value().startswith("queued until 2026-12-03T09:15")
    with session_scope() as s:
        alert = s.get(Alert, alert_id)
        assert alert is not None and alert.status == "QUEUED"
        assert alert.queued_until == datetime(2026, 12, 3, 3, 45, tzinfo=UTC)
    return alert_id


def _at_the_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATS_FAKE_NOW", "2026-12-03T09:15:30+05:30")
    reset_settings_cache()


def test_a_lost_open_job_is_scheduled_again_then_queued_once_the_open_passed(
    world: dict, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = redis.Redis.from_url(redis_url)
    alert_id = _queued_alert(world, monkeypatch)
    open_job = f"alert-{alert_id}{OPEN_JOB_SUFFIX}"
    scheduled = ScheduledJobRegistry("alerts", connection=conn)
    assert scheduled.get_job_ids() == [open_job]
    assert requeue_lost_alerts(conn) == []  # its job is there: nothing to do

    Job.fetch(open_job, connection=conn).delete()  # Redis lost it (the first job's record stays)
    assert requeue_lost_alerts(conn) == [alert_id]
    assert scheduled.get_job_ids() == [open_job]  # back in the schedule, not run at once
    wait = scheduled.get_scheduled_time(open_job) - datetime.now(UTC)
    assert abs(wait.total_seconds() - (17 * 3600 + 15 * 60)) < 60, wait
    assert requeue_lost_alerts(conn) == []
    assert "alert.requeued" in _actions(str(alert_id))

    _at_the_open(monkeypatch)
    Job.fetch(open_job, connection=conn).delete()  # lost again, and now the open has passed
    assert requeue_lost_alerts(conn) == [alert_id]
    assert scheduled.get_job_ids() == []
    assert Queue("alerts", connection=conn).job_ids == [open_job]  # due now: on the queue
    _run_burst_worker()
    (order,) = _orders()
    assert order.status == "FILLED" and order.alert_id == alert_id
    with session_scope() as s:
        assert s.get(Alert, alert_id).status == "DONE"  # type: ignore[union-attr]


def test_an_open_job_that_failed_for_good_is_rerun_and_trades_once(
    world: dict, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = redis.Redis.from_url(redis_url)
    alert_id = _queued_alert(world, monkeypatch)
    open_job = Job.fetch(f"alert-{alert_id}{OPEN_JOB_SUFFIX}", connection=conn)
    # The open comes: RQ's scheduler moves the job onto the queue (its due time is hours
    # away on the real clock, so the test moves it).
    _at_the_open(monkeypatch)
    ScheduledJobRegistry("alerts", connection=conn).remove(open_job)
    Queue("alerts", connection=conn).enqueue_job(open_job)
    _refuse("orders", "FILLED")
    _run_burst_worker()  # the paper order fills; the update that records it never lands
    (order,) = _orders()
    assert order.status in ("SUBMITTING", "UNKNOWN"), order.status
    assert open_job.get_status() == JobStatus.FAILED

    _allow("orders")
    monkeypatch.setattr(queueing, "RERUN_PAUSE", timedelta(0))
    assert requeue_lost_alerts(conn) == [alert_id]
    assert requeue_lost_alerts(conn) == []
    _run_burst_worker()
    (order,) = _orders()  # reconciled, not sent again
    assert order.status == "FILLED"
    assert _actions(order.client_order_id).count("order.submit") == 1
    with session_scope() as s:
        assert s.get(Alert, alert_id).status == "DONE"  # type: ignore[union-attr]
        (position,) = s.exec(select(Position)).all()
    assert position.status == "OPEN"
    assert "alert.rerun" in _actions(str(alert_id))


def test_an_open_job_rerun_after_a_crash_before_its_order_still_trades(
    world: dict, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ats_app.engine.execution import entry as pipeline

    alert_id = _queued_alert(world, monkeypatch)
    _at_the_open(monkeypatch)
    # The open's job died right after marking the alert PROCESSING, before any order; the
    # alert arrived 17 h ago, far beyond the staleness limit for an alert never queued.
    with session_scope() as s:
        alert = s.get(Alert, alert_id)
        assert alert is not None
        alert.status, alert.reason = "PROCESSING", None
        alert.received_at -= timedelta(hours=17)
        s.add(alert)
    assert pipeline.handle_alert(alert_id).startswith("filled")
    (order,) = _orders()
    assert order.status == "FILLED" and order.alert_id == alert_id
