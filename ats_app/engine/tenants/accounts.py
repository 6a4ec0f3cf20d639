"""Broker accounts: credentials encrypted at rest, write-only towards the UI."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlparse

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from ats_app.engine.core.errors import Conflict, NotFound, ValidationError
from ats_app.engine.store import audit
from ats_app.engine.store.models import BrokerAccount, utcnow
from ats_app.engine.tenants.secrets_box import default_box

CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9]{1,32}$")


@dataclass(frozen=True)
class AccountView:
    """An account as the UI sees it: secrets only as set / not set."""

    id: int
    label: str
    client_id: str
    base_url: str | None
    egress_proxy: str | None
    egress_ip: str | None
    egress_source_ip: str | None
    is_simulated: bool
    has_api_key: bool
    has_pin: bool
    has_totp_secret: bool


@dataclass(frozen=True)
class Credentials:
    """Decrypted credentials for the broker layer only. repr() never shows secrets."""

    account_id: int
    client_id: str
    base_url: str | None
    egress_proxy: str | None
    api_key: str = field(repr=False)
    pin: str = field(repr=False)
    totp_secret: str = field(repr=False)
    egress_source_ip: str | None = None  # local address the connections bind to


def _view(a: BrokerAccount) -> AccountView:
    assert a.id is not None
    return AccountView(
        id=a.id,
        label=a.label,
        client_id=a.client_id,
        base_url=a.base_url,
        egress_proxy=a.egress_proxy,
        egress_ip=a.egress_ip,
        egress_source_ip=a.egress_source_ip,
        is_simulated=a.is_simulated,
        has_api_key=bool(a.api_key_enc),
        has_pin=bool(a.pin_enc),
        has_totp_secret=bool(a.totp_secret_enc),
    )


def validate_totp_secret(secret: str) -> str:
    s = secret.strip().replace(" ", "").upper()
    if not s:
        raise ValidationError("TOTP secret is required", "totp_secret")
    try:
        base64.b32decode(s + "=" * (-len(s) % 8))
    except (binascii.Error, ValueError) as exc:
        raise ValidationError(
            "TOTP secret must be the base32 key shown when enabling TOTP (letters A-Z, digits 2-7)",
            "totp_secret",
        ) from exc
    return s


def _validate_url(value: str | None, field_name: str) -> str | None:
    if value is None or not value.strip():
        return None
    v = value.strip().rstrip("/")
    parsed = urlparse(v)
    if parsed.scheme not in ("http", "https", "socks5", "socks5h") or not parsed.netloc:
        raise ValidationError(
            f"{field_name.replace('_', ' ')} must be a URL like https://host:port", field_name
        )
    return v


def _validate_ip(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError as exc:
        raise ValidationError("egress IP must be an IPv4 or IPv6 address", "egress_ip") from exc


def _validate_source_ip(value: str | None) -> str | None:
    """A local address to send from. Only its form is checked here: whether this machine
    has it is checked where the connection is made (the dashboard saving the setting may
    run on another host or container than the workers that send the orders)."""
    if value is None or not value.strip():
        return None
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError as exc:
        raise ValidationError(
            "local source address must be an IPv4 or IPv6 address of this server, "
            "e.g. 10.0.1.25", "egress_source_ip") from exc
    if ip.is_unspecified or ip.is_multicast:
        # Binding to 0.0.0.0 / :: means "any address": it would silently change nothing.
        raise ValidationError(
            f"local source address {ip} cannot be sent from; give one address of this server",
            "egress_source_ip")
    return str(ip)


def _check_one_egress(egress_proxy: str | None, egress_source_ip: str | None) -> None:
    if egress_proxy and egress_source_ip:
        raise ValidationError(
            "an account leaves either through an egress proxy or from a local source address, "
            "not both: clear one of them", "egress_source_ip")


def _required(value: str | None, field_name: str, limit: int = 256) -> str:
    v = (value or "").strip()
    if not v:
        raise ValidationError(f"{field_name.replace('_', ' ')} is required", field_name)
    if len(v) > limit:
        raise ValidationError(f"{field_name.replace('_', ' ')} is too long", field_name)
    return v


def _owned(session: Session, user_id: int, account_id: int) -> BrokerAccount:
    row = session.exec(
        select(BrokerAccount)
        .where(BrokerAccount.id == account_id)
        .where(BrokerAccount.user_id == user_id)
    ).first()
    if row is None:
        raise NotFound(f"broker account {account_id} not found")
    return row


def add_account(
    session: Session,
    user_id: int,
    *,
    label: str,
    client_id: str,
    api_key: str,
    pin: str,
    totp_secret: str,
    base_url: str | None = None,
    egress_proxy: str | None = None,
    egress_ip: str | None = None,
    egress_source_ip: str | None = None,
    is_simulated: bool = False,
) -> AccountView:
    box = default_box()
    cid = _required(client_id, "client_id", 32)
    if not CLIENT_ID_RE.match(cid):
        raise ValidationError("client ID must be letters and digits only", "client_id")
    proxy = _validate_url(egress_proxy, "egress_proxy")
    source_ip = _validate_source_ip(egress_source_ip)
    _check_one_egress(proxy, source_ip)
    row = BrokerAccount(
        user_id=user_id,
        label=_required(label, "label", 100),
        client_id=cid.upper(),
        api_key_enc=box.encrypt(_required(api_key, "api_key")),
        pin_enc=box.encrypt(_required(pin, "pin", 64)),
        totp_secret_enc=box.encrypt(validate_totp_secret(totp_secret)),
        base_url=_validate_url(base_url, "base_url"),
        egress_proxy=proxy,
        egress_ip=_validate_ip(egress_ip),
        egress_source_ip=source_ip,
        is_simulated=is_simulated,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"you already have an account labelled {row.label!r}") from exc
    audit.record(
        session,
        "account.added",
        user_id=user_id,
        subject=str(row.id),
        client_id=row.client_id,
        simulated=is_simulated,
    )
    return _view(row)


def update_account(
    session: Session,
    user_id: int,
    account_id: int,
    *,
    label: str | None = None,
    api_key: str | None = None,
    pin: str | None = None,
    totp_secret: str | None = None,
    base_url: str | None = None,
    egress_proxy: str | None = None,
    egress_ip: str | None = None,
    egress_source_ip: str | None = None,
) -> AccountView:
    """Change fields; a secret left None or empty keeps its stored value (write-only secrets).
    A non-secret field left None keeps its value; "" clears it.

    Everything is validated before the row is touched, so refused input changes nothing
    (not even in this session's pending state)."""
    row = _owned(session, user_id, account_id)
    box = default_box()
    new: dict[str, str | None] = {}
    if label is not None and label.strip():
        new["label"] = _required(label, "label", 100)
    if api_key:
        new["api_key_enc"] = box.encrypt(_required(api_key, "api_key"))
    if pin:
        new["pin_enc"] = box.encrypt(_required(pin, "pin", 64))
    if totp_secret:
        new["totp_secret_enc"] = box.encrypt(validate_totp_secret(totp_secret))
    if base_url is not None:
        new["base_url"] = _validate_url(base_url, "base_url")
    if egress_proxy is not None:
        new["egress_proxy"] = _validate_url(egress_proxy, "egress_proxy")
    if egress_ip is not None:
        new["egress_ip"] = _validate_ip(egress_ip)
    if egress_source_ip is not None:
        new["egress_source_ip"] = _validate_source_ip(egress_source_ip)
    # The result must be consistent, whichever of the two this edit touches.
    _check_one_egress(new.get("egress_proxy", row.egress_proxy),
                      new.get("egress_source_ip", row.egress_source_ip))
    for name, value in new.items():
        setattr(row, name, value)
    changed = [name.removesuffix("_enc") for name in new]
    row.updated_at = utcnow()
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"you already have an account labelled {row.label!r}") from exc
    audit.record(
        session, "account.updated", user_id=user_id, subject=str(account_id), fields=changed
    )
    return _view(row)


def delete_account(session: Session, user_id: int, account_id: int) -> None:
    row = _owned(session, user_id, account_id)
    session.delete(row)
    audit.record(session, "account.deleted", user_id=user_id, subject=str(account_id))


def list_accounts(session: Session, user_id: int) -> list[AccountView]:
    rows = session.exec(
        select(BrokerAccount).where(BrokerAccount.user_id == user_id).order_by(BrokerAccount.id)
    ).all()
    return [_view(r) for r in rows]


def get_account(session: Session, user_id: int, account_id: int) -> AccountView:
    return _view(_owned(session, user_id, account_id))


def find_by_client_id(session: Session, user_id: int, client_id: str) -> AccountView | None:
    row = session.exec(
        select(BrokerAccount)
        .where(BrokerAccount.user_id == user_id)
        .where(BrokerAccount.client_id == client_id.strip().upper())
    ).first()
    return _view(row) if row else None


def credentials(session: Session, user_id: int, account_id: int) -> Credentials:
    """Decrypt an account's secrets for the broker layer. Never pass these to the UI."""
    return _decrypted(_owned(session, user_id, account_id))


def credentials_and_declared_ip(session: Session, user_id: int,
                                account_id: int) -> tuple[Credentials, str | None]:
    """`credentials` and the account's declared egress IP from one read: the order path needs
    both, and each read is a database round trip before the order goes out."""
    row = _owned(session, user_id, account_id)
    return _decrypted(row), row.egress_ip


def _decrypted(row: BrokerAccount) -> Credentials:
    assert row.id is not None
    box = default_box()
    return Credentials(
        account_id=row.id,
        client_id=row.client_id,
        base_url=row.base_url,
        egress_proxy=row.egress_proxy,
        egress_source_ip=row.egress_source_ip,
        api_key=box.decrypt(row.api_key_enc),
        pin=box.decrypt(row.pin_enc),
        totp_secret=box.decrypt(row.totp_secret_enc),
    )
