"""Startup chores shared by the backend and the CLI."""

from __future__ import annotations

import logging

from sqlmodel import Session, select

from ats_app.engine.core.config import Settings
from ats_app.engine.store import audit
from ats_app.engine.store.models import User
from ats_app.engine.tenants import accounts

log = logging.getLogger("ats.bootstrap")

BOOTSTRAP_LABEL = "Angel One (from environment)"


def admin_user_id(session: Session) -> int | None:
    return session.exec(select(User.id).where(User.is_admin).order_by(User.id)).first()


def account_from_env(session: Session, cfg: Settings) -> int | None:
    """SMARTAPI_* variables (the original single-account setup) → the admin's broker account.

    Creates the account on first start and updates its secrets on later starts, stored
    encrypted like any other. Returns its id, or None when not configured / no admin yet.
    """
    if not cfg.bootstrap_account_configured:
        return None
    missing = [
        n
        for n, v in (
            ("SMARTAPI_API_KEY", cfg.smartapi_api_key),
            ("SMARTAPI_PASSWORD", cfg.smartapi_password),
            ("SMARTAPI_TOTP", cfg.smartapi_totp),
        )
        if not v
    ]
    if missing:
        log.error(
            "SMARTAPI_CLIENT_ID is set but %s missing: account not created", ", ".join(missing)
        )
        return None
    admin = admin_user_id(session)
    if admin is None:
        log.warning("SMARTAPI_* set but no administrator exists yet; create the first user")
        return None
    assert cfg.smartapi_client_id and cfg.smartapi_api_key
    assert cfg.smartapi_password and cfg.smartapi_totp
    existing = accounts.find_by_client_id(session, admin, cfg.smartapi_client_id)
    if existing is None:
        view = accounts.add_account(
            session,
            admin,
            label=BOOTSTRAP_LABEL,
            client_id=cfg.smartapi_client_id,
            api_key=cfg.smartapi_api_key,
            pin=cfg.smartapi_password,
            totp_secret=cfg.smartapi_totp,
        )
    else:
        view = accounts.update_account(
            session,
            admin,
            existing.id,
            api_key=cfg.smartapi_api_key,
            pin=cfg.smartapi_password,
            totp_secret=cfg.smartapi_totp,
        )
    audit.record(session, "account.bootstrapped_from_env", user_id=admin, subject=str(view.id))
    return view.id
