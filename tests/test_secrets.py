"""Broker secrets are encrypted at rest and never stored, logged or returned in clear."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from ats_app.engine.core.errors import ValidationError
from ats_app.engine.store.db import get_engine, session_scope
from ats_app.engine.tenants import accounts, users, webhooks
from ats_app.engine.tenants.secrets_box import SecretBox, SecretError

API_KEY = "ApiKey-Very-Distinct-1234"
PIN = "48151623"
TOTP = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_round_trip_and_wrong_key() -> None:
    box = SecretBox(Fernet.generate_key().decode())
    token = box.encrypt("s3cret-value")
    assert token.startswith("enc1:") and "s3cret-value" not in token
    assert box.decrypt(token) == "s3cret-value"
    other = SecretBox(Fernet.generate_key().decode())
    with pytest.raises(SecretError):
        other.decrypt(token)
    with pytest.raises(SecretError):
        box.decrypt("plain text that was never encrypted")


def test_invalid_key_is_a_clear_error() -> None:
    with pytest.raises(SecretError, match="ATS_SECRET_KEY"):
        SecretBox("not-a-key")


def _add(session, uid: int) -> accounts.AccountView:
    return accounts.add_account(
        session, uid, label="main", client_id="A123456", api_key=API_KEY, pin=PIN, totp_secret=TOTP
    )


def test_secrets_never_in_clear_in_database(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with session_scope() as s:
        uid = users.create_user(s, "alice", "password123", "Alice", "A").id
        view = _add(s, uid)
        _, link_secret = webhooks.create_link(
            s,
            uid,
            name="l",
            accounts=[webhooks.LinkAccount(view.id, 1)],
            strategy_id=None,
            stop_loss_pct=1,
            target_pct=2,
            trailing_stop_pct=None,
            paper=True,
        )
    # Decryptable by the engine...
    with session_scope() as s:
        creds = accounts.credentials(s, uid, view.id)
    assert (creds.api_key, creds.pin, creds.totp_secret) == (API_KEY, PIN, TOTP)
    assert API_KEY not in repr(creds) and PIN not in repr(creds)
    # ...but never present in clear anywhere in the database.
    secrets = [API_KEY, PIN, TOTP, link_secret]
    with get_engine().connect() as c:
        for table in ("broker_accounts", "audit_events", "webhook_links"):
            dump = repr(c.execute(sa.text(f"SELECT * FROM {table}")).fetchall())
            for secret in secrets:
                assert secret not in dump, f"{secret!r} found in clear in {table}"
    if database_url.startswith("sqlite"):
        get_engine().dispose()  # checkpoint the WAL so the file holds everything
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("ats-test.db*"))
        assert b"A123456" in raw  # the scan does see the stored data...
        for secret in secrets:
            assert secret.encode() not in raw  # ...and no secret in it
    for secret in secrets:
        assert secret not in caplog.text


def test_view_reports_secrets_as_set_only(database_url: str) -> None:
    with session_scope() as s:
        uid = users.create_user(s, "alice", "password123", "Alice", "A").id
        view = _add(s, uid)
    assert view.has_api_key and view.has_pin and view.has_totp_secret
    assert API_KEY not in repr(view) and TOTP not in repr(view)


def test_update_keeps_secret_when_left_blank(database_url: str) -> None:
    with session_scope() as s:
        uid = users.create_user(s, "alice", "password123", "Alice", "A").id
        view = _add(s, uid)
        accounts.update_account(s, uid, view.id, label="renamed", api_key="", pin=None)
        creds = accounts.credentials(s, uid, view.id)
    assert creds.api_key == API_KEY and creds.pin == PIN


def test_bad_totp_secret_names_the_field(database_url: str) -> None:
    with session_scope() as s:
        uid = users.create_user(s, "alice", "password123", "Alice", "A").id
        with pytest.raises(ValidationError) as err:
            accounts.add_account(
                s,
                uid,
                label="x",
                client_id="A1",
                api_key="k",
                pin="1234",
                totp_secret="not base32 !!",
            )
    assert err.value.field == "totp_secret"
