"""The trading day's schedule, on RQ's own scheduler (`worker.work(with_scheduler=True)`).

Jobs (queue `default`, times IST, trading days only):
- `pre_open` 08:45: log in every broker account afresh (Angel ends sessions daily) and refresh
  the scrip master. A failed login is audited as `account.login_failed` (and pushed on the
  user's live channel), so the dashboard shows it before the open, not at the first signal.
- `square_off` at each user's square-off time (default 15:15): exit every open position
  of the users whose time has come, reason `square_off`. All our orders are intraday (MIS).
  Skipped with MARKET_HOURS=always (paper at any hour), as the entry cut-off is.
- `risk_watch` every minute 09:15-15:29: users with a daily loss limit and "exit on loss
  limit" whose day's loss reached it get every position exited, reason `loss_limit`.

How it survives restarts and runs once with several workers:
- jobs are scheduled with `Queue.enqueue_at(..., unique=True)` under ids derived from
  (job, day, HH:MM): they live in Redis (ScheduledJobRegistry), so a worker restart keeps
  them, and scheduling the same run twice is a no-op. RQ elects one scheduler among workers.
- `ensure_scheduled` (re)plans today's remaining runs and the next trading day's. Every job
  calls it when done, so the plan rolls forward day after day; call it at worker start too.
  A run whose time passed while no worker was up is scheduled at once if the session is not
  over (a late square-off beats none).
- each job first takes a Redis `SET NX` guard per (job, day): a second copy (however it got
  there) does nothing. A retry of the job that took the guard may go on (every step is
  idempotent: exits claim positions OPEN -> EXITING first).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import redis
from rq import Queue
from rq.exceptions import DuplicateJobError
from sqlmodel import col, select

from ats_app.engine.core.config import settings
from ats_app.engine.exits.claims import exit_all
from ats_app.engine.market import hours
from ats_app.engine.market.hours import IST, Calendar
from ats_app.engine.risk import daily_summary
from ats_app.engine.risk import policy as risk
from ats_app.engine.risk.gate import get_limits, loss_breached
from ats_app.engine.store import audit, live
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import BrokerAccount, Position, RiskLimits
from ats_app.engine.store.redis_conn import DEFAULT_QUEUE

log = logging.getLogger("ats.schedules")

PRE_OPEN_AT = time(8, 45)
SUMMARY_AT = daily_summary.SUMMARY_AT
GUARD_TTL_S = 3 * 24 * 3600
JOB_TIMEOUT_S = 600
RESULT_TTL_S = 24 * 3600
_MODULE = "ats_app.engine.risk.schedules"


@dataclass(frozen=True)
class Run:
    name: str  # pre_open / square_off / daily_summary / risk_watch
    day: date
    at: time  # IST

    @property
    def job_id(self) -> str:
        return f"ats-sched-{self.name}-{self.day.isoformat()}-{self.at:%H%M}"

    @property
    def when(self) -> datetime:
        return datetime.combine(self.day, self.at, IST)

    @property
    def func(self) -> str:
        return f"{_MODULE}.run_{self.name}"

    @property
    def args(self) -> tuple[str, ...]:
        if self.name == "pre_open":
            return (self.day.isoformat(),)
        return (self.day.isoformat(), f"{self.at:%H:%M}")


def plan(day: date, calendar: Calendar, square_off_times: set[time]) -> list[Run]:
    """The day's fixed runs (risk_watch is chained minute by minute, see `next_watch`)."""
    if not hours.is_trading_day(day, calendar)[0]:
        return []
    runs = [Run("pre_open", day, PRE_OPEN_AT)]
    runs += [Run("square_off", day, t) for t in sorted(square_off_times)]
    runs.append(Run("daily_summary", day, SUMMARY_AT))
    return runs


def next_watch(at: datetime, calendar: Calendar) -> Run:
    """The next minute's risk watch: within today's session, else the next session's first."""
    local = hours.ist(at)
    minute = (local + timedelta(minutes=1)).replace(second=0, microsecond=0)
    if (hours.is_trading_day(local.date(), calendar)[0]
            and minute.date() == local.date() and minute.time() < hours.CLOSE):
        return Run("risk_watch", local.date(), max(minute.time(), hours.OPEN))
    day = local.date()
    if local.time() >= hours.OPEN or not hours.is_trading_day(day, calendar)[0]:
        day = hours.next_trading_day(day, calendar)
    return Run("risk_watch", day, hours.OPEN)


def square_off_times() -> set[time]:
    times = {risk.DEFAULT_LIMITS.square_off_at}
    with session_scope() as s:
        for text in s.exec(select(RiskLimits.square_off_at)).all():
            times.add(time.fromisoformat(text))
    return times


def schedule(conn: redis.Redis, run: Run, when: datetime | None = None) -> bool:
    """Put one run on RQ's scheduler; False if that run is already scheduled (or ran)."""
    queue = Queue(DEFAULT_QUEUE, connection=conn)
    ttl = 600 if run.name == "risk_watch" else RESULT_TTL_S
    try:
        queue.enqueue_at(hours.wall_clock(when or run.when), run.func, *run.args,
                         job_id=run.job_id, job_timeout=JOB_TIMEOUT_S, result_ttl=ttl,
                         failure_ttl=GUARD_TTL_S, unique=True)
    except DuplicateJobError:
        return False
    return True


def ensure_scheduled(conn: redis.Redis | None = None, at: datetime | None = None) -> list[str]:
    """Schedule today's remaining runs and the next trading day's; returns new job ids."""
    from ats_app.engine.store.queueing import connection

    conn = conn or connection()
    at = at or hours.now()
    calendar = hours.default_calendar()
    today = hours.trading_day_of(at)
    times = square_off_times()
    added = []
    for day in (today, hours.next_trading_day(today, calendar)):
        for run in plan(day, calendar, times):
            if run.when <= at:
                # Missed (no worker was up): still worth it while the session lasts.
                if day != today or hours.ist(at).time() >= hours.CLOSE:
                    continue
                if schedule(conn, run, when=at):
                    added.append(run.job_id)
            elif schedule(conn, run):
                added.append(run.job_id)
    watch = next_watch(at, calendar)
    if schedule(conn, watch):
        added.append(watch.job_id)
    if added:
        log.info("scheduled %s", added)
    return added


def once(conn: redis.Redis, name: str, day: str) -> bool:
    """Take the (job, day) guard. True: go ahead. A retry of the job holding it may go on."""
    from rq import get_current_job

    job = get_current_job()
    token = job.id if job is not None else f"adhoc-{uuid.uuid4().hex}"
    key = f"ats:sched:once:{name}:{day}"
    if conn.set(key, token, nx=True, ex=GUARD_TTL_S):
        return True
    held = conn.get(key)
    return job is not None and held is not None and held.decode() == token


def _conn() -> redis.Redis:
    from ats_app.engine.store.queueing import connection

    return connection()


def _roll_forward(conn: redis.Redis) -> None:
    try:
        ensure_scheduled(conn)
    except Exception:  # the run itself succeeded; the next worker start re-plans
        log.exception("could not schedule the next runs")


# --------------------------------------------------------------------------- jobs


def login_account(account: BrokerAccount, conn: redis.Redis) -> tuple[bool, str]:
    """A fresh login of one account; audited either way. Never raises."""
    from ats_app.engine.broker.factory import angel_broker
    from ats_app.engine.tenants import accounts

    assert account.id is not None
    try:
        with session_scope() as s:
            creds = accounts.credentials(s, account.user_id, account.id)
        broker = angel_broker(creds, conn)
        try:
            broker.session.login()
        finally:
            broker.close()
    except Exception as exc:  # one account's failure never stops the others
        error = str(exc) or type(exc).__name__
        audit.record_now("account.login_failed", user_id=account.user_id,
                         subject=str(account.id), client_id=account.client_id, error=error,
                         errorcode=getattr(exc, "errorcode", None), when="pre_open")
        live.publish(conn, account.user_id, {"type": "account", "event": "login_failed",
                                             "account_id": account.id, "error": error})
        # the owner hears before the open, not at a signal
        from ats_app.engine.notify import notices

        notices.emit(account.user_id, "broker_login_failed", account=account.label,
                    client_id=account.client_id, reason=error)
        return False, error
    audit.record_now("account.login_ok", user_id=account.user_id, subject=str(account.id),
                     client_id=account.client_id, when="pre_open")
    return True, "ok"


def _refresh_masters(accounts: list[BrokerAccount]) -> dict[str, str]:
    from ats_app.engine.market import scrip_master

    out = {}
    for base_url in sorted({a.base_url for a in accounts} or {None}, key=lambda u: u or ""):
        url = scrip_master.master_url(base_url)
        try:
            scrip_master.ensure_master(base_url=base_url)
            out[url] = "ok"
        except Exception as exc:
            out[url] = str(exc)
            audit.record_now("scrip_master.refresh_failed", subject=url[:255], error=str(exc))
    return out


def run_pre_open(day: str) -> dict[str, Any]:
    """08:45 IST: every broker account logs in; the scrip master is refreshed."""
    conn = _conn()
    if not once(conn, "pre_open", day):
        return {"status": "already ran", "day": day}
    with session_scope() as s:
        rows = list(s.exec(select(BrokerAccount).order_by(col(BrokerAccount.id))).all())
    logins = {str(a.id): login_account(a, conn)[1] for a in rows}
    masters = _refresh_masters(rows)
    audit.record_now("schedule.pre_open", subject=day, logins=logins, masters=masters)
    _roll_forward(conn)
    return {"status": "done", "day": day, "logins": logins, "masters": masters}


def _users_with_open_positions() -> list[int]:
    with session_scope() as s:
        ids = s.exec(select(Position.user_id).where(Position.status == "OPEN").distinct()).all()
    return sorted(ids)


def run_square_off(day: str, hhmm: str) -> dict[str, Any]:
    """Exit every open position of the users whose square-off time is `hhmm` or earlier.

    Not with MARKET_HOURS=always (a paper demo at any hour): there the market never closes
    and entries are taken past the square-off time, so squaring off at it would close only
    the positions opened before it, at a time the demo says nothing about."""
    conn = _conn()
    if settings().market_hours == "always":
        audit.record_now("schedule.square_off", subject=f"{day} {hhmm}",
                         skipped="MARKET_HOURS=always")
        _roll_forward(conn)
        return {"status": "skipped", "day": day, "at": hhmm, "reason": "MARKET_HOURS=always"}
    if not once(conn, f"square_off-{hhmm}", day):
        return {"status": "already ran", "day": day, "at": hhmm}
    due = time.fromisoformat(hhmm)
    exited: dict[int, list[int]] = {}
    for uid in _users_with_open_positions():
        with session_scope() as s:
            if get_limits(s, uid).square_off_at > due:
                continue
        exited[uid] = exit_all(uid, "square_off", conn)
    audit.record_now("schedule.square_off", subject=f"{day} {hhmm}",
                     exits={str(k): v for k, v in exited.items()})
    _roll_forward(conn)
    return {"status": "done", "day": day, "at": hhmm, "exits": exited}


def run_daily_summary(day: str, hhmm: str) -> dict[str, Any]:
    """After the close: each user who traded gets the day's summary, once."""
    from ats_app.engine.notify import notices

    conn = _conn()
    if not once(conn, "daily_summary", day):
        return {"status": "already ran", "day": day}
    sent = []
    for uid, summary in daily_summary.summaries(date.fromisoformat(day)).items():
        notices.emit(uid, "daily_summary", once=f"summary-{day}", date=day,
                    trades=summary.trades, realized_pnl=summary.realized_pnl,
                    charges=summary.charges, failures=summary.failures, paper=summary.paper)
        sent.append(uid)
    audit.record_now("schedule.daily_summary", subject=day, users=sent)
    return {"status": "done", "day": day, "users": sent}


def run_risk_watch(day: str, hhmm: str) -> dict[str, Any]:
    """Exit everything of users over their daily loss limit (when they asked for it)."""
    conn = _conn()
    if not once(conn, f"risk_watch-{hhmm}", day):
        return {"status": "already ran", "day": day, "at": hhmm}
    at = hours.now()
    exited: dict[int, list[int]] = {}
    for uid in _users_with_open_positions():
        if loss_breached(uid, at, conn):
            exited[uid] = exit_all(uid, "loss_limit", conn)
    if exited:
        audit.record_now("schedule.loss_limit", subject=f"{day} {hhmm}",
                         exits={str(k): v for k, v in exited.items()})
    try:
        schedule(conn, next_watch(at, hours.default_calendar()))
    except redis.RedisError:
        log.exception("could not schedule the next risk watch")
    return {"status": "done", "day": day, "at": hhmm, "exits": exited}
