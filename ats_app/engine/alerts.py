"""Receiving a TradingView alert: validate, persist, enqueue — and answer in milliseconds.

The route never waits for the broker. An alert is accepted only once its row is committed,
so nothing accepted can be lost: if Redis is down at that moment, `recovery` re-enqueues it.
Every refusal is audited in its own transaction (the request's own work is rolled back).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from ats_app.engine import audit, bot
from ats_app.engine.alert_schema import (
    check_fresh,
    dedup_key,
    parse_alert,
    parse_json_object,
    stored_payload,
)
from ats_app.engine.config import Settings, settings
from ats_app.engine.db import session_scope
from ats_app.engine.errors import ValidationError
from ats_app.engine.models import Alert, WebhookLink, utcnow
from ats_app.engine.queueing import connection, enqueue_alert
from ats_app.engine.secrets_box import default_box

log = logging.getLogger("ats.alerts")


@dataclass(frozen=True)
class Reply:
    status_code: int
    body: dict[str, Any] = field(default_factory=dict)


def _refuse(code: int, error: str, *, action: str, user_id: int | None = None,
            subject: str | None = None, field_name: str | None = None, **detail: Any) -> Reply:
    audit.record_now(action, user_id=user_id, subject=subject, status=code, error=error,
                     field=field_name, **detail)
    body: dict[str, Any] = {"status": "error", "error": error}
    if field_name:
        body["field"] = field_name
    return Reply(code, body)


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


def _over_rate(conn: redis.Redis, link_id: int, per_min: int) -> bool:
    """Fixed one-minute window per link, shared by every backend process through Redis."""
    key = f"ats:rl:webhook:{link_id}:{int(time.time() // 60)}"
    try:
        pipe = conn.pipeline()
        pipe.incr(key)
        pipe.expire(key, 120)
        count = pipe.execute()[0]
    except redis.RedisError:
        log.warning("rate limiter unavailable (Redis down): alert for link %s not limited", link_id)
        return False
    return int(count) > per_min


def _find_link(session: Session, token: str) -> WebhookLink | None:
    if not token or len(token) > 64:
        return None
    return session.exec(select(WebhookLink).where(WebhookLink.token == token)).first()


def receive(token: str, body: bytes | None, source_ip: str | None, *,  # noqa: C901
            check_source: bool = True) -> Reply:
    """Everything the webhook route does, framework-free. Returns the HTTP answer.

    `body` is None when it was larger than the limit (the route stops reading it early).
    `check_source=False` is for the dashboard's own "Send test alert" (no TradingView IP).
    """
    cfg = settings()
    if check_source and not source_allowed(source_ip, cfg):
        return _refuse(403, "source address not allowed", action="webhook.refused",
                       subject=source_ip)
    with session_scope() as s:
        link = _find_link(s, token)
        if link is None:
            return _refuse(404, "unknown webhook", action="webhook.refused",
                           subject=token[:12], source_ip=source_ip)
        link_id, user_id = link.id, link.user_id
        assert link_id is not None
        secret_enc, enabled = link.secret_enc, link.enabled
    subject = str(link_id)
    if body is None or len(body) > cfg.webhook_max_bytes:
        return _refuse(413, f"body over {cfg.webhook_max_bytes} bytes", action="webhook.refused",
                       user_id=user_id, subject=subject)
    try:
        data = parse_json_object(body)
    except ValidationError as exc:
        return _refuse(400, str(exc), action="webhook.refused", user_id=user_id, subject=subject)
    provided = data.get("secret")
    expected = default_box().decrypt(secret_enc)
    if not isinstance(provided, str) or not hmac.compare_digest(provided.encode(),
                                                                expected.encode()):
        return _refuse(401, "missing or wrong secret", action="webhook.refused",
                       user_id=user_id, subject=subject, source_ip=source_ip)
    conn = connection()
    if _over_rate(conn, link_id, cfg.webhook_rate_per_min):
        return _refuse(429, f"more than {cfg.webhook_rate_per_min} alerts a minute for this "
                       "link", action="webhook.refused", user_id=user_id, subject=subject)
    now = utcnow()
    try:
        signal = parse_alert(data)
        if signal.is_entry:  # a late exit still protects money; a late entry is a wrong one
            check_fresh(signal, now, cfg.alert_max_age_seconds)
    except ValidationError as exc:
        return _refuse(422, str(exc), action="webhook.refused", user_id=user_id,
                       subject=subject, field_name=exc.field)
    key = dedup_key(data, signal, now, cfg.alert_dedup_window_seconds)
    with session_scope() as s:
        running = bot.is_running(s, user_id)
        status, reason = "ACCEPTED", None
        if not enabled:
            status, reason = "IGNORED", "link_disabled"
        elif not running:
            status, reason = "IGNORED", "bot_stopped"
        alert = Alert(user_id=user_id, link_id=link_id, dedup_key=key,
                      payload=stored_payload(data), action=signal.action,
                      symbol=signal.tradingsymbol or signal.symbol, status=status,
                      reason=reason, source_ip=source_ip, received_at=now)
        s.add(alert)
        try:
            s.flush()
        except IntegrityError:
            s.rollback()
            first = s.exec(select(Alert.id).where(Alert.link_id == link_id)
                           .where(Alert.dedup_key == key)).first()
            audit.record_now("alert.duplicate", user_id=user_id, subject=subject,
                             first_alert_id=first)
            return Reply(200, {"status": "duplicate", "alert_id": first})
        alert_id = alert.id
        assert alert_id is not None
        audit.record(s, "alert.received", user_id=user_id, subject=str(alert_id),
                     link_id=link_id, status=status, reason=reason)
    if status == "IGNORED":
        return Reply(200, {"status": "ignored", "reason": reason, "alert_id": alert_id})
    try:
        enqueue_alert(alert_id, conn)
    except redis.RedisError:
        # Committed already: recovery re-enqueues it when Redis is back. Still accepted.
        log.error("alert %s accepted but not enqueued (Redis down); recovery will enqueue",
                  alert_id)
    return Reply(202, {"status": "accepted", "alert_id": alert_id})
