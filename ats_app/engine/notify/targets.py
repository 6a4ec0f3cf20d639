"""Per-user notification targets (Apprise URLs, encrypted) and event switches.

Also the Redis copy of each user's "which events would reach somebody" set, so that
`notify.emit` decides with one Redis round trip instead of a database query on the order path.
The database stays the truth: the copy expires quickly, is dropped after every change here,
and the send job re-reads targets and switches before sending anything.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from urllib.parse import urlsplit

import apprise
import redis
import sqlalchemy as sa
from sqlmodel import Session, select

from ats_app.engine.core.errors import NotFound, ValidationError
from ats_app.engine.notify.messages import DESCRIPTIONS, Event
from ats_app.engine.store import audit
from ats_app.engine.store.models import NotificationPref, NotificationTarget, utcnow
from ats_app.engine.tenants.secrets_box import default_box

log = logging.getLogger("ats.notify")

MAX_TARGETS_PER_USER = 10
MAX_URL_LENGTH = 2000
SEND_TIMEOUT = 5.0  # seconds to connect, and to wait for an answer, per target
CFG_TTL = 300  # seconds the Redis copy of a user's switches may lag a missed invalidation
CFG_SENTINEL = "_"  # keeps the set non-empty: "cached, nothing enabled" differs from "absent"


def cfg_key(user_id: int) -> str:
    return f"ats:notify:cfg:{user_id}"


@lru_cache(maxsize=8)
def _conn_for(url: str) -> redis.Redis:
    # Short timeouts: a hung Redis must cost the order path at most about a second.
    return redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)


def connection() -> redis.Redis:
    from ats_app.engine.store.redis_conn import redis_url

    return _conn_for(redis_url())


@dataclass(frozen=True)
class TargetView:
    """A target as the UI and CLI see it: the URL only masked."""

    id: int
    label: str
    url_hint: str
    service: str
    enabled: bool
    created_at: datetime


def _view(t: NotificationTarget) -> TargetView:
    assert t.id is not None
    return TargetView(
        id=t.id,
        label=t.label,
        url_hint=t.url_hint,
        service=t.url_hint.split("://", 1)[0],
        enabled=t.enabled,
        created_at=t.created_at,
    )


def url_hint(url: str) -> str:
    """`tgram://12…/…89`: enough to tell targets apart, never enough to use one.

    Secrets sit in the middle of Apprise URLs (user:password@, bot tokens), so only the
    first and last two characters of the part after the scheme are shown, and nothing
    of a short one.
    """
    scheme, _, rest = url.partition("://")
    rest = rest.split("?", 1)[0].rstrip("/")
    if len(rest) < 12:
        return f"{scheme}://…"
    return f"{scheme}://{rest[:2]}…/…{rest[-2:]}"


def validate_url(url: str | None) -> tuple[str, str]:
    """(clean URL, service name) or ValidationError. Apprise itself judges the URL."""
    u = (url or "").strip()
    if not u:
        raise ValidationError("notification URL is required", "url")
    if len(u) > MAX_URL_LENGTH:
        raise ValidationError("notification URL is too long", "url")
    if "://" not in u or not urlsplit(u).scheme:
        raise ValidationError(
            "notification URL must look like tgram://bot_token/chat_id or mailtos://...", "url"
        )
    plugin = apprise.Apprise.instantiate(u, suppress_exceptions=True)
    if plugin is None:
        # Never echo the URL back: it may hold a token.
        raise ValidationError(
            f"Apprise does not accept this {u.split('://', 1)[0]}:// URL "
            "(see https://github.com/caronc/apprise/wiki for each service's format)",
            "url",
        )
    return u, str(getattr(plugin, "service_name", "") or u.split("://", 1)[0])


def _owned(session: Session, user_id: int, target_id: int) -> NotificationTarget:
    row = session.exec(
        select(NotificationTarget)
        .where(NotificationTarget.id == target_id)
        .where(NotificationTarget.user_id == user_id)
    ).first()
    if row is None:
        raise NotFound(f"notification target {target_id} not found")
    return row


def invalidate(session: Session | None, user_id: int) -> None:
    """Drop the Redis copy now and again after the caller's commit (best effort).

    Now: so emit() stops using the old copy at once. After commit: an emit() between the two
    may have re-cached the not-yet-committed old state.
    """

    def drop(*_: object) -> None:
        with contextlib.suppress(Exception):
            connection().delete(cfg_key(user_id))

    try:
        drop()
        if session is not None:
            sa.event.listen(session, "after_commit", drop, once=True)
    except Exception:  # no Redis configured (e.g. CLI in dev): the copy expires in CFG_TTL
        log.debug("notify: could not invalidate config cache for user %s", user_id)


def add_target(
    session: Session, user_id: int, url: str, label: str | None = None
) -> TargetView:
    clean, service = validate_url(url)
    count = session.exec(
        select(sa.func.count())
        .select_from(NotificationTarget)
        .where(NotificationTarget.user_id == user_id)
    ).one()
    if count >= MAX_TARGETS_PER_USER:
        raise ValidationError(f"at most {MAX_TARGETS_PER_USER} notification targets per user")
    name = (label or "").strip() or service
    if len(name) > 100:
        raise ValidationError("label is too long", "label")
    row = NotificationTarget(
        user_id=user_id,
        label=name,
        url_enc=default_box().encrypt(clean),
        url_hint=url_hint(clean),
    )
    session.add(row)
    session.flush()
    audit.record(
        session, "notify.target_added", user_id=user_id, subject=str(row.id), hint=row.url_hint
    )
    invalidate(session, user_id)
    return _view(row)


def list_targets(session: Session, user_id: int) -> list[TargetView]:
    rows = session.exec(
        select(NotificationTarget)
        .where(NotificationTarget.user_id == user_id)
        .order_by(NotificationTarget.id)
    ).all()
    return [_view(r) for r in rows]


def remove_target(session: Session, user_id: int, target_id: int) -> None:
    row = _owned(session, user_id, target_id)
    session.delete(row)
    audit.record(session, "notify.target_removed", user_id=user_id, subject=str(target_id))
    invalidate(session, user_id)


def set_target_enabled(
    session: Session, user_id: int, target_id: int, enabled: bool
) -> TargetView:
    row = _owned(session, user_id, target_id)
    row.enabled = enabled
    session.add(row)
    audit.record(
        session, "notify.target_switched", user_id=user_id, subject=str(target_id),
        enabled=enabled,
    )
    invalidate(session, user_id)
    return _view(row)


def target_urls(session: Session, user_id: int) -> list[tuple[int, str, str]]:
    """(id, hint, decrypted URL) of the user's enabled targets: for senders only."""
    rows = session.exec(
        select(NotificationTarget)
        .where(NotificationTarget.user_id == user_id)
        .where(NotificationTarget.enabled == sa.true())
        .order_by(NotificationTarget.id)
    ).all()
    box = default_box()
    return [(r.id, r.url_hint, box.decrypt(r.url_enc)) for r in rows if r.id is not None]


def send_now(url: str, title: str, body: str, timeout: float | None = None) -> bool:
    """One message to one Apprise URL, synchronously. Failures are False, never raised.

    Connect and read timeouts are capped (e-mail's own default is 15 s, and a URL may ask for
    more) so a hanging service holds a worker for seconds, not minutes.
    """
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        return False
    cap = SEND_TIMEOUT if timeout is None else timeout
    plugin.socket_connect_timeout = min(plugin.socket_connect_timeout or cap, cap)
    plugin.socket_read_timeout = min(plugin.socket_read_timeout or cap, cap)
    a = apprise.Apprise()
    a.add(plugin)
    return bool(a.notify(title=title, body=body, body_format=apprise.NotifyFormat.TEXT))


def test_targets(session: Session, user_id: int) -> list[dict[str, object]]:
    """Send a test message to every enabled target now; report each result (no retries)."""
    results = []
    for target_id, hint, url in target_urls(session, user_id):
        ok = send_now(url, "ATS test notification", "Notifications from your trading bot work.")
        results.append({"id": target_id, "url_hint": hint, "ok": ok})
    if not results:
        raise ValidationError("no enabled notification targets: add one with notify add")
    audit.record(
        session, "notify.tested", user_id=user_id, ok=sum(1 for r in results if r["ok"]),
        failed=sum(1 for r in results if not r["ok"]),
    )
    return results


def event_switches(session: Session, user_id: int) -> dict[str, bool]:
    """Every event with its switch; events never switched are on."""
    overrides = {
        p.event: p.enabled
        for p in session.exec(
            select(NotificationPref).where(NotificationPref.user_id == user_id)
        ).all()
    }
    return {e.value: overrides.get(e.value, True) for e in Event}


def parse_event(name: str) -> Event:
    try:
        return Event(name.strip().lower())
    except ValueError:
        known = ", ".join(e.value for e in Event)
        raise ValidationError(f"unknown event {name!r} (known: {known})", "event") from None


def set_event_switches(
    session: Session, user_id: int, *, enable: Sequence[str] = (), disable: Sequence[str] = ()
) -> dict[str, bool]:
    wanted = {parse_event(e): True for e in enable}
    for e in disable:
        ev = parse_event(e)
        if wanted.get(ev):
            raise ValidationError(f"event {ev.value} is both enabled and disabled", "event")
        wanted[ev] = False
    rows = {
        p.event: p
        for p in session.exec(
            select(NotificationPref).where(NotificationPref.user_id == user_id)
        ).all()
    }
    for ev, on in wanted.items():
        row = rows.get(ev.value) or NotificationPref(user_id=user_id, event=ev.value)
        row.enabled = on
        row.updated_at = utcnow()
        session.add(row)
    if wanted:
        session.flush()
        audit.record(
            session, "notify.events_switched", user_id=user_id,
            **{ev.value: on for ev, on in wanted.items()},
        )
        invalidate(session, user_id)
    return event_switches(session, user_id)


def describe_events() -> dict[str, str]:
    return {e.value: DESCRIPTIONS[e] for e in Event}


def deliverable_events(session: Session, user_id: int) -> set[str]:
    """Events that would reach someone: switched on, and the user has an enabled target."""
    has_target = session.exec(
        select(NotificationTarget.id)
        .where(NotificationTarget.user_id == user_id)
        .where(NotificationTarget.enabled == sa.true())
        .limit(1)
    ).first()
    if has_target is None:
        return set()
    return {e for e, on in event_switches(session, user_id).items() if on}


def refresh_cache(user_id: int, conn: redis.Redis) -> set[str]:
    """Rebuild the Redis copy of `deliverable_events` from the database."""
    from ats_app.engine.store.db import session_scope

    with session_scope() as s:
        events = deliverable_events(s, user_id)
    pipe = conn.pipeline(transaction=True)
    pipe.delete(cfg_key(user_id))
    pipe.sadd(cfg_key(user_id), CFG_SENTINEL, *sorted(events))
    pipe.expire(cfg_key(user_id), CFG_TTL)
    pipe.execute()
    return events
