"""Webhook links: the URL + secret a TradingView alert posts to, and what it trades."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlmodel import Session, col, delete, select

from ats_app.engine.core.config import settings
from ats_app.engine.core.errors import NotFound, ValidationError
from ats_app.engine.store import audit
from ats_app.engine.store.models import (
    BrokerAccount,
    Strategy,
    WebhookLink,
    WebhookLinkAccount,
    utcnow,
)
from ats_app.engine.tenants.secrets_box import default_box

TOKEN_BYTES = 24  # 192 bits: unguessable link id
SECRET_BYTES = 18


@dataclass(frozen=True)
class LinkAccount:
    account_id: int
    lot_multiplier: int


@dataclass(frozen=True)
class LinkView:
    id: int
    name: str
    token: str
    url: str
    strategy_id: int | None
    stop_loss_pct: float | None
    target_pct: float | None
    trailing_stop_pct: float | None
    paper: bool
    enabled: bool
    accounts: tuple[LinkAccount, ...]
    queue_outside_hours: bool = False
    exits_by_signal: bool = False
    broker_stop: bool = False


def webhook_url(token: str) -> str:
    return f"{settings().public_base_url}/webhook/{token}"


PCT_LABELS = {
    "stop_loss_pct": "Stop-loss %",
    "target_pct": "Target %",
    "trailing_stop_pct": "Trailing stop %",
}


def validate_pct(value: float | str | None, field: str, upper: float) -> float | None:
    """A percentage in (0, upper], or None for "off": not set, empty, 0 or "off". Messages
    name the field both ways: as the form labels it and as the API/CLI calls it."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "off")):
        return None
    label = f"{PCT_LABELS.get(field, field)} ({field})"
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{label} must be a number or off, got {value!r}", field) from exc
    if v == 0:
        return None
    if not (0 < v <= upper):  # also refuses NaN and negatives
        raise ValidationError(
            f"{label} must be greater than 0 and at most {upper:g} (0 or empty: off)", field
        )
    return v


def _validate_rules(
    sl: object, target: object, tsl: object, exits_by_signal: bool
) -> tuple[float | None, ...]:
    levels = (
        validate_pct(sl, "stop_loss_pct", 99),  # type: ignore[arg-type]
        validate_pct(target, "target_pct", 1000),  # type: ignore[arg-type]
        validate_pct(tsl, "trailing_stop_pct", 99),  # type: ignore[arg-type]
    )
    # A position nothing would ever close is refused: some level, or the alerts' exits.
    if all(v is None for v in levels) and not exits_by_signal:
        raise ValidationError(
            "every exit is off: set a stop-loss, target or trailing stop (stop_loss_pct, "
            "target_pct, trailing_stop_pct), or tick \"My alerts send the exits\" "
            "(exits_by_signal) when your alerts close positions",
            "stop_loss_pct",
        )
    return levels


BROKER_STOP_NEEDS_A_STOP = (
    "Stop at broker (broker_stop) needs a stop on the link to rest at the broker: set a "
    "stop-loss % (stop_loss_pct) or a trailing stop % (trailing_stop_pct), or turn Stop at "
    "broker off"
)


def _check_broker_stop(broker_stop: bool, sl: float | None, tsl: float | None) -> None:
    """A resting stop needs a level: the link's stop-loss or trailing stop (a target alone
    gives nothing to rest at the broker)."""
    if broker_stop and sl is None and tsl is None:
        raise ValidationError(BROKER_STOP_NEEDS_A_STOP, "broker_stop")


def record_refusal(user_id: int, link_id: int | None, exc: ValidationError) -> None:
    """Audit a refused link change, in its own transaction: the caller's rolled back (call
    it after the caller's session has closed)."""
    audit.record_now("webhook.refused", user_id=user_id,
                     subject=str(link_id) if link_id else None, field=exc.field or "",
                     reason=str(exc))


def _view(session: Session, link: WebhookLink) -> LinkView:
    assert link.id is not None
    rows = session.exec(
        select(WebhookLinkAccount)
        .where(WebhookLinkAccount.link_id == link.id)
        .order_by(WebhookLinkAccount.account_id)
    ).all()
    return LinkView(
        id=link.id,
        name=link.name,
        token=link.token,
        url=webhook_url(link.token),
        strategy_id=link.strategy_id,
        stop_loss_pct=link.stop_loss_pct,
        target_pct=link.target_pct,
        trailing_stop_pct=link.trailing_stop_pct,
        paper=link.paper,
        enabled=link.enabled,
        accounts=tuple(LinkAccount(r.account_id, r.lot_multiplier) for r in rows),
        queue_outside_hours=link.queue_outside_hours,
        exits_by_signal=link.exits_by_signal,
        broker_stop=link.broker_stop,
    )


def _owned(session: Session, user_id: int, link_id: int) -> WebhookLink:
    row = session.exec(
        select(WebhookLink).where(WebhookLink.id == link_id).where(WebhookLink.user_id == user_id)
    ).first()
    if row is None:
        raise NotFound(f"webhook link {link_id} not found")
    return row


def _check_refs(
    session: Session, user_id: int, strategy_id: int | None, accounts: list[LinkAccount]
) -> None:
    """Strategy and accounts must exist and belong to the same user."""
    if strategy_id is not None:
        s = session.get(Strategy, strategy_id)
        if s is None or s.user_id != user_id:
            raise ValidationError(f"strategy {strategy_id} not found", "strategy_id")
    seen: set[int] = set()
    for acc in accounts:
        a = session.get(BrokerAccount, acc.account_id)
        if a is None or a.user_id != user_id:
            raise ValidationError(f"broker account {acc.account_id} not found", "accounts")
        if acc.account_id in seen:
            raise ValidationError(f"broker account {acc.account_id} listed twice", "accounts")
        seen.add(acc.account_id)
        if not (1 <= acc.lot_multiplier <= 100):
            raise ValidationError("lot multiplier must be between 1 and 100", "lot_multiplier")


def _set_accounts(
    session: Session, user_id: int, link_id: int, accounts: list[LinkAccount]
) -> None:
    session.exec(delete(WebhookLinkAccount).where(col(WebhookLinkAccount.link_id) == link_id))  # type: ignore[call-overload]
    for acc in accounts:
        session.add(
            WebhookLinkAccount(
                user_id=user_id,
                link_id=link_id,
                account_id=acc.account_id,
                lot_multiplier=acc.lot_multiplier,
            )
        )


def create_link(
    session: Session,
    user_id: int,
    *,
    name: str,
    accounts: list[LinkAccount],
    strategy_id: int | None,
    stop_loss_pct: float | str | None,
    target_pct: float | str | None,
    trailing_stop_pct: float | str | None,
    paper: bool = True,
    enabled: bool = True,
    queue_outside_hours: bool = False,
    exits_by_signal: bool = False,
    broker_stop: bool = False,
) -> tuple[LinkView, str]:
    """Create a link; returns it and its secret (shown once here, revealable later).
    `broker_stop`: each position's stop-loss also rests at the broker (needs a stop)."""
    n = name.strip()
    if not n or len(n) > 100:
        raise ValidationError("link name is required (at most 100 characters)", "name")
    sl, target, tsl = _validate_rules(
        stop_loss_pct, target_pct, trailing_stop_pct, exits_by_signal
    )
    _check_broker_stop(broker_stop, sl, tsl)
    _check_refs(session, user_id, strategy_id, accounts)
    if not paper and not accounts:
        raise ValidationError("a live link needs at least one broker account", "accounts")
    secret = secrets.token_urlsafe(SECRET_BYTES)
    link = WebhookLink(
        user_id=user_id,
        name=n,
        token=secrets.token_urlsafe(TOKEN_BYTES),
        secret_enc=default_box().encrypt(secret),
        strategy_id=strategy_id,
        stop_loss_pct=sl,
        target_pct=target,
        trailing_stop_pct=tsl,
        paper=paper,
        enabled=enabled,
        queue_outside_hours=queue_outside_hours,
        exits_by_signal=exits_by_signal,
        broker_stop=broker_stop,
    )
    session.add(link)
    session.flush()
    assert link.id is not None
    _set_accounts(session, user_id, link.id, accounts)
    session.flush()
    audit.record(session, "webhook.created", user_id=user_id, subject=str(link.id), paper=paper,
                 broker_stop=broker_stop)
    return _view(session, link), secret


def update_link(
    session: Session,
    user_id: int,
    link_id: int,
    *,
    name: str,
    accounts: list[LinkAccount],
    strategy_id: int | None,
    stop_loss_pct: float | str | None,
    target_pct: float | str | None,
    trailing_stop_pct: float | str | None,
    paper: bool,
    enabled: bool,
    queue_outside_hours: bool = False,
    exits_by_signal: bool = False,
    broker_stop: bool | None = None,
) -> LinkView:
    """Replace the link's settings. `broker_stop` None keeps the link's own (callers that
    know nothing of it, such as a replay's apply, never turn it off by leaving it out);
    with it on, the levels must keep a stop."""
    link = _owned(session, user_id, link_id)
    n = name.strip()
    if not n or len(n) > 100:
        raise ValidationError("link name is required (at most 100 characters)", "name")
    sl, target, tsl = _validate_rules(
        stop_loss_pct, target_pct, trailing_stop_pct, exits_by_signal
    )
    stop_at_broker = link.broker_stop if broker_stop is None else broker_stop
    _check_broker_stop(stop_at_broker, sl, tsl)
    _check_refs(session, user_id, strategy_id, accounts)
    if not paper and not accounts:
        raise ValidationError("a live link needs at least one broker account", "accounts")
    link.name, link.strategy_id, link.paper, link.enabled = n, strategy_id, paper, enabled
    link.queue_outside_hours, link.exits_by_signal = queue_outside_hours, exits_by_signal
    link.stop_loss_pct, link.target_pct, link.trailing_stop_pct = sl, target, tsl
    # Open positions keep what they opened with (`Position.broker_stop`): this is for the next.
    changed = {"broker_stop": stop_at_broker} if stop_at_broker != link.broker_stop else {}
    link.broker_stop = stop_at_broker
    link.updated_at = utcnow()
    session.add(link)
    _set_accounts(session, user_id, link_id, accounts)
    session.flush()
    audit.record(session, "webhook.updated", user_id=user_id, subject=str(link_id), **changed)
    return _view(session, link)


def delete_link(session: Session, user_id: int, link_id: int) -> None:
    session.delete(_owned(session, user_id, link_id))
    audit.record(session, "webhook.deleted", user_id=user_id, subject=str(link_id))


def list_links(session: Session, user_id: int) -> list[LinkView]:
    rows = session.exec(
        select(WebhookLink).where(WebhookLink.user_id == user_id).order_by(WebhookLink.id)
    ).all()
    return [_view(session, r) for r in rows]


def get_link(session: Session, user_id: int, link_id: int) -> LinkView:
    return _view(session, _owned(session, user_id, link_id))


def reveal_secret(session: Session, user_id: int, link_id: int) -> str:
    link = _owned(session, user_id, link_id)
    audit.record(session, "webhook.secret_revealed", user_id=user_id, subject=str(link_id))
    return default_box().decrypt(link.secret_enc)


def rotate_secret(session: Session, user_id: int, link_id: int) -> str:
    link = _owned(session, user_id, link_id)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    link.secret_enc = default_box().encrypt(secret)
    link.updated_at = utcnow()
    session.add(link)
    audit.record(session, "webhook.secret_rotated", user_id=user_id, subject=str(link_id))
    return secret


def rotate_token(session: Session, user_id: int, link_id: int) -> LinkView:
    """New URL for the link; the old URL answers 404 from now on."""
    link = _owned(session, user_id, link_id)
    link.token = secrets.token_urlsafe(TOKEN_BYTES)
    link.updated_at = utcnow()
    session.add(link)
    audit.record(session, "webhook.token_rotated", user_id=user_id, subject=str(link_id))
    return _view(session, link)

