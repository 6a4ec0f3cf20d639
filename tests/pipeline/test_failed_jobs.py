"""A job that fails for good — every RQ retry spent, here because the database refuses its
final commit each time — leaves its order SUBMITTING (entry) or its position EXITING (exit).
Recovery re-runs it after a pause; the re-run reconciles with the broker, never resends."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from rq.job import Job, JobStatus
from sqlalchemy import text
from sqlmodel import select

from ats_app.engine.execution import entry as pipeline
from ats_app.engine.execution.recovery import requeue_lost_alerts
from ats_app.engine.exits import rules
from ats_app.engine.exits.claims import claim_exit, exit_job_id, finish_pending_exits
from ats_app.engine.store import queueing
from ats_app.engine.store.db import get_engine, session_scope
from ats_app.engine.store.models import Alert, AuditEvent, Order, Position, utcnow
from ats_app.engine.store.queueing import alert_job_id, enqueue_exit
from tests.pipeline.test_pipeline import _orders, _post, _run_burst_worker


def _refuse(table: str, status: str) -> None:
    """Make the database refuse any update that sets `table.status` to `status`."""
    with get_engine().begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text(
                f"CREATE TRIGGER drill BEFORE UPDATE OF status ON {table} "
                f"WHEN NEW.status = '{status}' BEGIN SELECT RAISE(ABORT, 'drill'); END"))
        else:
            conn.execute(text(
                "CREATE FUNCTION drill() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.status = '{status}' THEN RAISE EXCEPTION 'drill'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"))
            conn.execute(text(
                f"CREATE TRIGGER drill BEFORE UPDATE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION drill()"))


def _allow(table: str) -> None:
    with get_engine().begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER drill"))
        else:
            conn.execute(text(f"DROP TRIGGER drill ON {table}"))
            conn.execute(text("DROP FUNCTION drill()"))


def _actions(subject: str) -> list[str]:
    with session_scope() as s:
        return list(s.exec(select(AuditEvent.action).where(AuditEvent.subject == subject)
                           .order_by(AuditEvent.id)).all())


def test_a_failed_entry_job_is_rerun_and_reconciles_its_submitted_order(
    world: dict, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = redis.Redis.from_url(redis_url)
    alert_id = _post(world["paper"], id="stuck-entry")["alert_id"]
    _refuse("orders", "FILLED")
    _run_burst_worker()  # the paper order fills; the update that records it never lands
    (order,) = _orders()
    # Left SUBMITTING by the first run, UNKNOWN by the retries (committed before they look).
    assert order.status in ("SUBMITTING", "UNKNOWN"), order.status
    job = Job.fetch(alert_job_id(alert_id), connection=conn)
    assert job.get_status() == JobStatus.FAILED
    with session_scope() as s:
        assert s.get(Alert, alert_id).status == "PROCESSING"  # type: ignore[union-attr]

    _allow("orders")
    assert requeue_lost_alerts(conn) == []  # it just failed: not straight back in
    monkeypatch.setattr(queueing, "RERUN_PAUSE", timedelta(0))
    assert requeue_lost_alerts(conn) == [alert_id]
    assert requeue_lost_alerts(conn) == []  # queued once, not again while it waits
    _run_burst_worker()

    (order,) = _orders()  # no second attempt was written, so none was sent
    assert order.status == "FILLED"
    with session_scope() as s:
        alert = s.get(Alert, alert_id)
        assert alert is not None and alert.status == "DONE"
        (position,) = s.exec(select(Position)).all()
    assert position.status == "OPEN" and order.position_id == position.id
    actions = _actions(order.client_order_id)
    assert actions.count("order.submit") == 1 and "order.reconcile_found" in actions
    assert "alert.rerun" in _actions(str(alert_id))
    assert queueing.reruns(alert_job_id(alert_id), conn) == 1


def test_a_failed_exit_job_is_rerun_until_the_position_is_sold(
    world: dict, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = redis.Redis.from_url(redis_url)
    # In this process: a burst worker would also run the day's schedules, whose square-off
    # is due by the wall clock and would sell the position first.
    assert pipeline.handle_alert(_post(world["paper"], id="entry")["alert_id"]).startswith("filled")
    with session_scope() as s:
        (position,) = s.exec(select(Position)).all()
    pid = position.id
    assert pid is not None
    assert position.status == "OPEN"
    decision = rules.ExitDecision(rules.ExitReason.STOP_LOSS, 1, 1, utcnow())
    assert claim_exit(pid, decision, source="test")
    _refuse("positions", "CLOSED")
    enqueue_exit(pid, "stop_loss", conn)
    _run_burst_worker()
    with session_scope() as s:
        assert s.get(Position, pid).status == "EXITING"  # type: ignore[union-attr]
        (sell,) = s.exec(select(Order).where(Order.purpose == "EXIT")).all()
    assert sell.status in ("SUBMITTING", "UNKNOWN"), sell.status
    assert Job.fetch(exit_job_id(pid), connection=conn).get_status() == JobStatus.FAILED

    _allow("positions")
    assert finish_pending_exits(conn) == []  # the pause first
    monkeypatch.setattr(queueing, "RERUN_PAUSE", timedelta(0))
    assert finish_pending_exits(conn) == [pid]
    _run_burst_worker()
    with session_scope() as s:
        assert s.get(Position, pid).status == "CLOSED"  # type: ignore[union-attr]
        (sell,) = s.exec(select(Order).where(Order.purpose == "EXIT")).all()
    assert sell.status == "FILLED"
    assert _actions(sell.client_order_id).count("order.submit") == 1
    assert "position.exit_rerun" in _actions(str(pid))


def test_reruns_stop_at_the_cap(world: dict, redis_url: str) -> None:
    conn = redis.Redis.from_url(redis_url)
    alert_id = _post(world["paper"], id="capped")["alert_id"]
    _refuse("alerts", "DONE")
    _run_burst_worker()
    job = Job.fetch(alert_job_id(alert_id), connection=conn)
    job.meta["ats_reruns"] = queueing.MAX_RERUNS
    job.save_meta()
    later = utcnow() + queueing.RERUN_PAUSE + timedelta(seconds=1)
    assert not queueing.rerun_if_failed(job.id, conn, now=later)
    job.meta["ats_reruns"] = queueing.MAX_RERUNS - 1
    job.save_meta()
    assert queueing.rerun_if_failed(job.id, conn, now=later)
    assert job.get_status() == JobStatus.QUEUED
