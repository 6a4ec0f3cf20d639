"""Receiving a TradingView alert: validate, persist, enqueue — and answer in milliseconds.

The route never waits for the broker. An alert is accepted only once its row is committed,
so nothing accepted can be lost: if Redis is down at that moment, `recovery` re-enqueues it.
Every refusal is audited in its own transaction, after the request's own has rolled back
and given its connection back.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from ats_app.engine.core.config import Settings, settings
from ats_app.engine.core.errors import ValidationError
from ats_app.engine.execution.signals import (
    AlertSignal,
    check_dates,
    check_fresh,
    dedup_key,
    parse_alert,
    parse_json_object,
    stored_payload,
)
from ats_app.engine.intake import refusals
from ats_app.engine.intake.link_cache import GEN_KEY, LinkCache, LinkFacts, current_generation
from ats_app.engine.intake.listing import check as check_listed
from ats_app.engine.intake.listing import servers_of
from ats_app.engine.store import audit
from ats_app.engine.store.db import get_engine, session_scope, write_promptly
from ats_app.engine.store.models import Alert, AuditEvent, BotState, WebhookLink, utcnow
from ats_app.engine.store.queueing import connection, enqueue_alert
from ats_app.engine.tenants.secrets_box import default_box

log = logging.getLogger("ats.alerts")


@dataclass(frozen=True)
class Reply:
    status_code: int
    body: dict[str, Any] = field(default_factory=dict)


class _Refused(Exception):
    """A check failed: the HTTP answer and what to record about it (audit, owner's notice).

    Recorded by `settle`, which `receive` calls once the ack's session is closed: each record
    takes a connection of its own, and checking one out while the ack holds another starves
    the pool under a burst of refusals (duplicates of one alert), every ack then waiting.
    """

    def __init__(self, reply: Reply, *after: Callable[[], None]) -> None:
        self.reply = reply
        self.after = list(after)

    def settle(self) -> Reply:
        for record in self.after:
            _best_effort(record)
        return self.reply


def _best_effort(record: Callable[[], None]) -> None:
    """A refusal's records (audit event, Alerts-page row, counters) never turn its answer
    into a 500: a connection killed under one (the soak's PostgreSQL kills, a Redis
    restart) is tried once more on a fresh one, then logged. TradingView still hears why."""
    for attempt in (1, 2):
        try:
            record()
            return
        except (sa.exc.DBAPIError, redis.RedisError) as exc:
            if attempt == 2:
                log.error("a refusal was answered but not recorded: %s", exc)


def _refusal(
    code: int,
    error: str,
    *,
    action: str,
    user_id: int | None = None,
    subject: str | None = None,
    field_name: str | None = None,
    **detail: Any,
) -> _Refused:
    """A refusal's answer, with its audit record still to be written (`_Refused.settle`)."""
    body: dict[str, Any] = {"status": "error", "error": error}
    if field_name:
        body["field"] = field_name

    def record() -> None:
        audit.record_now(
            action,
            user_id=user_id,
            subject=subject,
            status=code,
            error=error,
            field=field_name,
            **detail,
        )

    return _Refused(Reply(code, body), record)


def _refuse(code: int, error: str, *, action: str, **kw: Any) -> Reply:
    """Audit a refusal now and return its answer (outside the ack's session only)."""
    return _refusal(code, error, action=action, **kw).settle()


def source_allowed(peer: str | None, cfg: Settings) -> bool:
    if not cfg.webhook_ip_allowlist:
        return True
    if peer is None:
        return False
    try:
        ip = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(ip == ipaddress.ip_address(a) for a in cfg.webhook_ip_allowlist)


def client_ip(peer: str | None, forwarded_for: str | None, cfg: Settings) -> str | None:
    """The real client: X-Forwarded-For is believed only from a configured proxy."""
    if forwarded_for and peer and peer in cfg.trusted_proxies:
        return forwarded_for.split(",")[-1].strip() or peer
    return peer


def _rate_key(link_id: int) -> str:
    """Fixed one-minute window per link, shared by every backend process through Redis."""
    return f"ats:rl:webhook:{link_id}:{int(time.time() // 60)}"


def _count_alert(pipe: redis.client.Pipeline, link_id: int) -> None:
    """Count this alert in its link's window (queued on `pipe`; the INCR's answer is the
    count including it, atomically: alerts in flight together cannot all pass one reading)."""
    key = _rate_key(link_id)
    pipe.incr(key)
    pipe.expire(key, 120)


def _uncount(conn: redis.Redis, link_id: int) -> None:
    """Take back the count of a request that proved not to be the owner's alert (bad body or
    secret): only authentic alerts use up a link's limit."""
    with contextlib.suppress(redis.RedisError):  # best-effort, as the limiter is
        conn.decr(_rate_key(link_id))


def _find_link(session: Session, token: str) -> tuple[WebhookLink, bool] | None:
    """The link and whether its owner's bot runs: one query."""
    row = session.exec(
        select(WebhookLink, BotState.running)
        .join(BotState, col(BotState.user_id) == col(WebhookLink.user_id), isouter=True)
        .where(WebhookLink.token == token)
    ).first()
    return None if row is None else (row[0], bool(row[1]))


def _read_link(token: str) -> LinkFacts | None:
    with session_scope() as s:
        found = _find_link(s, token)
        servers = servers_of(s, found[0].id) if found and found[0].id else ()  # type: ignore[arg-type]
    if found is None:
        return None
    link, running = found
    assert link.id is not None
    secret = default_box().decrypt(link.secret_enc).encode()
    return LinkFacts(link.id, link.user_id, secret, link.enabled, running, servers)


_links = LinkCache()


def _lookup(token: str, conn: redis.Redis) -> tuple[LinkFacts | None, int | None]:
    """The link behind `token`, and this request counted in the link's minute: the count
    including it (None: Redis is down, so nothing is cached and nothing limited). A cached
    link costs one Redis round trip, which also confirms that no link, bot or user changed
    since it was read (`link_cache`)."""
    entry = _links.peek(token)
    try:
        if entry is not None:
            pipe = conn.pipeline(transaction=False)
            pipe.get(GEN_KEY)
            if entry.facts is not None:
                _count_alert(pipe, entry.facts.id)
            gen, *count = pipe.execute()
            if gen == entry.generation:
                return entry.facts, int(count[0]) if count else None
            if entry.facts is not None:
                _uncount(conn, entry.facts.id)  # counted again below, on the fresh read
        gen = current_generation(conn)  # read before the link: a change after it re-reads
    except redis.RedisError:
        log.warning("link cache and rate limit unavailable (Redis down)")
        return _read_link(token), None
    facts = _read_link(token)
    _links.put(token, facts, gen)
    if facts is None:
        return None, None
    try:
        pipe = conn.pipeline(transaction=False)
        _count_alert(pipe, facts.id)
        return facts, int(pipe.execute()[0])
    except redis.RedisError:
        return facts, None


@dataclass(frozen=True)
class _Link:
    facts: LinkFacts

    @property
    def id(self) -> int:
        return self.facts.id

    @property
    def user_id(self) -> int:
        return self.facts.user_id

    @property
    def subject(self) -> str:
        return str(self.facts.id)

    def refuse(self, code: int, error: str, *, body: bytes | None, source_ip: str | None,
               field_name: str | None = None, **detail: Any) -> _Refused:
        """The refusal's answer; recorded (audit and the Alerts page's row, the body with
        its secrets masked) once the ack's session is closed."""
        reply = _refusal(code, error, action="webhook.refused", field_name=field_name).reply
        secret = self.facts.secret

        def record() -> None:
            refusals.record(user_id=self.user_id, link_id=self.id, code=code, error=error,
                            field=field_name, body=refusals.mask_body(body, [secret]),
                            source_ip=source_ip, **detail)

        return _Refused(reply, record)


# Tokens come from secrets.token_urlsafe: anything else names no link, and is not looked up
# (a NUL in the path, %00, made PostgreSQL refuse the query: a 500).
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _load_link(token: str, source_ip: str | None, conn: redis.Redis) -> tuple[_Link, int | None]:
    shaped = _TOKEN.fullmatch(token) is not None
    facts, count = _lookup(token, conn) if shaped else (None, None)
    if facts is None:  # unknown, deleted or rotated: same answer, nothing revealed
        raise _refusal(
            404, "unknown webhook", action="webhook.refused",
            subject=token[:12] if shaped else ascii(token[:12]), source_ip=source_ip,
        )
    return _Link(facts), count


def _authentic_body(
    link: _Link, body: bytes | None, source_ip: str | None, cfg: Settings,
    body_timeout: float | None = None,
) -> dict[str, Any]:
    """Arrived, size, JSON, then the secret (constant-time) — in that order."""
    if body_timeout is not None:
        raise link.refuse(408, f"body not received in full within {body_timeout:g} s",
                          body=body, source_ip=source_ip)
    if body is None or len(body) > cfg.webhook_max_bytes:
        raise link.refuse(413, f"body over {cfg.webhook_max_bytes} bytes", body=None,
                          source_ip=source_ip)
    try:
        data = parse_json_object(body)
    except ValidationError as exc:  # a field named: JSON, but a repeated key (422)
        raise link.refuse(422 if exc.field else 400, str(exc), field_name=exc.field,
                          body=body, source_ip=source_ip) from exc
    provided = data.get("secret")
    if not isinstance(provided, str) or not hmac.compare_digest(
        provided.encode(), link.facts.secret
    ):
        raise link.refuse(401, "missing or wrong secret", body=body, source_ip=source_ip)
    return data


def _valid_signal(
    link: _Link,
    data: dict[str, Any],
    count: int | None,
    conn: redis.Redis,
    cfg: Settings,
    now: datetime,
    body: bytes | None = None,
    source_ip: str | None = None,
) -> AlertSignal:
    if count is not None and count > cfg.webhook_rate_per_min:
        raise link.refuse(
            429, f"more than {cfg.webhook_rate_per_min} alerts a minute for this link",
            body=body, source_ip=source_ip,
        )
    try:
        signal = parse_alert(data)
        check_dates(signal, now)
        check_listed(link.facts, signal, now)  # the master in memory: unknown symbol, strike...
        if signal.is_entry:  # a late exit still protects money; a late entry is a wrong one
            check_fresh(signal, now, cfg.alert_max_age_seconds)
    except ValidationError as exc:
        # The secret was right, so this is the owner's own alert: tell them (rate-limited).
        from ats_app.engine.notify import notices

        reason = str(exc)
        refused = link.refuse(422, reason, field_name=exc.field, body=body,
                              source_ip=source_ip)
        refused.after.append(lambda: notices.emit(
            link.user_id, "alert_refused", reason=reason, link=link.subject))
        raise refused from exc
    return signal


# Statement objects built once: SQLAlchemy reuses their compiled form for every alert.
_ALERTS = Alert.__table__  # type: ignore[attr-defined]
_AUDITS = AuditEvent.__table__  # type: ignore[attr-defined]
_ALERT_FIELDS = ("user_id", "link_id", "dedup_key", "payload", "action", "symbol", "status",
                 "reason", "source_ip", "received_at")
_INSERT_ALERT = (sa.insert(_ALERTS).values({f: sa.bindparam(f) for f in _ALERT_FIELDS})
                 .returning(_ALERTS.c.id))
_NEW_ALERT = _INSERT_ALERT.cte("new_alert")
# PostgreSQL: the alert and its audit record (subject: the new id) in one autocommitted
# statement, one round trip instead of BEGIN, two INSERTs and COMMIT (0.4 ms of the ack).
_INSERT_ALERT_AUDITED = (
    sa.insert(_AUDITS)
    .from_select(["user_id", "action", "subject", "detail", "created_at"], sa.select(
        sa.bindparam("user_id"), sa.bindparam("audit_action"),
        sa.cast(_NEW_ALERT.c.id, sa.String), sa.bindparam("audit_detail"),
        sa.bindparam("received_at")))
    .add_cte(_NEW_ALERT)
    .returning(_AUDITS.c.subject)
)


def _insert_alert(row: dict[str, Any]) -> int:
    """Insert the alert and its "alert.received" audit record atomically; the alert's id."""
    detail = {"link_id": row["link_id"], "status": row["status"], "reason": row["reason"]}
    engine = get_engine()
    if engine.dialect.name == "postgresql":
        audit_row = audit.fields("alert.received", row["user_id"], None, detail)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            alert_id = int(c.execute(_INSERT_ALERT_AUDITED, {
                **row, "audit_action": audit_row["action"], "audit_detail": audit_row["detail"],
            }).scalar_one())
        audit.logged("alert.received", row["user_id"], str(alert_id))
        return alert_id

    def insert_both(c: sa.Connection) -> int:
        alert_id = int(c.execute(_INSERT_ALERT, row).scalar_one())
        audit.insert(c, "alert.received", user_id=row["user_id"], subject=str(alert_id),
                     **detail)
        return alert_id

    return write_promptly(insert_both)


def _store(
    link: _Link,
    data: dict[str, Any],
    signal: AlertSignal,
    key: str,
    now: datetime,
    source_ip: str | None,
    body: bytes | None = None,
) -> tuple[int, str | None]:
    """Store the alert (audited); (its id, why it is ignored or None). Duplicates raise
    _Refused(200). Core statements, not the ORM: this is the ack's whole database cost."""
    reason = None
    if not link.facts.enabled:
        reason = "link_disabled"
    elif not link.facts.bot_running:
        reason = "bot_stopped"
    status = "IGNORED" if reason else "ACCEPTED"
    try:
        alert_id = _insert_alert({
            "user_id": link.user_id, "link_id": link.id, "dedup_key": key,
            "payload": stored_payload(data), "action": signal.action,
            "symbol": signal.tradingsymbol or signal.symbol, "status": status,
            "reason": reason, "source_ip": source_ip, "received_at": now,
        })
    except IntegrityError:  # the UNIQUE (link, dedup key): this alert came before
        with session_scope() as s:
            first = s.exec(
                select(Alert.id).where(Alert.link_id == link.id).where(Alert.dedup_key == key)
            ).first()
        secret = link.facts.secret
        raise _Refused(  # on the Alerts page too: "why did my alert not trade?" - a repeat
            Reply(200, {"status": "duplicate", "alert_id": first}),
            lambda: refusals.record(
                user_id=link.user_id, link_id=link.id, code=200,
                error=f"the same alert as alert #{first}", field=None,
                body=refusals.mask_body(body, [secret]), source_ip=source_ip,
                action="alert.duplicate", first_alert_id=first,
            ),
        ) from None
    return alert_id, reason


def receive(
    token: str,
    body: bytes | None,
    source_ip: str | None,
    *,
    check_source: bool = True,
    answer: Callable[[Reply], None] | None = None,
    body_timeout: float | None = None,
) -> Reply:
    """Everything the webhook route does, framework-free. Returns the HTTP answer.

    `body` is None when it was larger than the limit (the route stops reading it early), or
    when it did not arrive in full within `body_timeout` seconds (then given: a 408).
    `check_source=False` is for the dashboard's own "Send test alert" (no TradingView IP).
    `answer`, if given, gets an accepted alert's answer as soon as its row is committed, before
    the job is enqueued: the sender's reply need not wait for that Redis round trip, and the
    commit is the promise (recovery enqueues a committed alert whose job never made it).
    """
    cfg = settings()
    if check_source and not source_allowed(source_ip, cfg):
        return _refuse(
            403, "source address not allowed", action="webhook.refused", subject=source_ip
        )
    conn = connection()
    now = utcnow()
    try:
        # The alert is accepted only once its row is committed. A refusal writes nothing and
        # is recorded by settle(), once the ack holds no connection.
        link, count = _load_link(token, source_ip, conn)
        try:
            data = _authentic_body(link, body, source_ip, cfg, body_timeout)
        except _Refused as refused:
            if count is not None:
                refused.after.append(lambda: _uncount(conn, link.id))
            raise
        signal = _valid_signal(link, data, count, conn, cfg, now, body, source_ip)
        key = dedup_key(data, signal, now, cfg.alert_dedup_window_seconds)
        alert_id, ignored = _store(link, data, signal, key, now, source_ip, body)
    except _Refused as refused:
        return refused.settle()
    if ignored:
        return Reply(200, {"status": "ignored", "reason": ignored, "alert_id": alert_id})
    accepted = Reply(202, {"status": "accepted", "alert_id": alert_id})
    if answer is not None:
        answer(accepted)
    try:
        enqueue_alert(alert_id, conn)
    except redis.RedisError:
        # Committed already: recovery re-enqueues it when Redis is back. Still accepted.
        log.error("alert %s accepted but not enqueued (Redis down); recovery will", alert_id)
    return accepted
