"""Broker accounts page state. Secrets go in, never come back out."""

from __future__ import annotations

import contextlib

import reflex as rx
from sqlmodel import Session

from ats_app import routes
from ats_app.engine.core.config import settings
from ats_app.engine.core.errors import AtsError
from ats_app.engine.risk import gate
from ats_app.engine.store import audit
from ats_app.engine.store.db import session_scope
from ats_app.engine.tenants import accounts
from ats_app.state.auth import AuthState, sentence
from ats_app.state.deleting import ConfirmDelete

FORM_FIELDS = (
    "label",
    "client_id",
    "api_key",
    "pin",
    "totp_secret",
    "base_url",
    "egress_proxy",
    "egress_ip",
    "egress_source_ip",
)
# The account's own risk limits, beside the user's (empty: only the user's limits apply).
LIMIT_FIELDS = gate.ACCOUNT_LIMIT_FIELDS


def form_fields(form: dict[str, str]) -> dict[str, str]:
    """The account form's values as `add_account`/`update_account` keywords. Every field is
    sent (empty when blank): on edit, a blank non-secret field clears it, which is why the
    edit form must start from the current values (`edit_values`)."""
    return {k: form.get(k, "") for k in FORM_FIELDS}


def edit_values(row: dict[str, str]) -> dict[str, str]:
    """What the edit form starts with: every non-secret value of the account, so saving
    an edit that only renames it keeps its server, proxy, IP and source address."""
    return {"label": row["label"], "base_url": row["base_url"],
            "egress_proxy": row["egress_proxy"], "egress_ip": row["egress_ip_value"],
            "egress_source_ip": row["egress_source_ip_value"],
            **{name: row[name] for name in LIMIT_FIELDS}}


def save_account(uid: int, editing_id: int, form: dict[str, str]) -> str:
    """Add (editing_id 0) or update an account from the form; returns the message to show.

    Refused input (bad field, duplicate label) is audited after its transaction has rolled
    back, in its own one: recording it inside would be rolled back with it, and a second
    writer next to an open SQLite write would wait on the lock."""
    fields = form_fields(form)
    limits = {name: form.get(name, "") for name in LIMIT_FIELDS}
    try:
        # One transaction: a refused limit keeps the rest of the edit from being saved too.
        with session_scope() as s:
            if editing_id:
                fields.pop("client_id")
                accounts.update_account(s, uid, editing_id, **fields)
                gate.set_account_limits(s, uid, editing_id, **limits)
                return "Account updated."
            added = accounts.add_account(s, uid, **fields)
            if any(v.strip() for v in limits.values()):
                gate.set_account_limits(s, uid, added.id, **limits)
            return "Account added."
    except AtsError as exc:
        with contextlib.suppress(Exception):  # never let the audit hide the user's error
            audit.record_now("account.refused", user_id=uid, subject=str(editing_id or "new"),
                             field=getattr(exc, "field", None), error=str(exc))
        raise


def _egress(a: accounts.AccountView) -> str:
    if a.egress_proxy:
        return a.egress_proxy
    if a.egress_source_ip:
        return f"from {a.egress_source_ip}"
    return "direct"


def limits_text(own: dict[str, int | None]) -> str:
    """The account's own limits and what it holds, as one cell: "holds 1 · max 2 open ·
    max 4 lots/order", or "holds 0 · your limits only"."""
    parts = [f"holds {own['open_positions']}"]
    if own["max_open_positions"] is not None:
        parts.append(f"max {own['max_open_positions']} open")
    if own["max_lots_per_order"] is not None:
        parts.append(f"max {own['max_lots_per_order']} lots/order")
    if len(parts) == 1:
        parts.append("your limits only")
    return " · ".join(parts)


def _limit_value(value: int | None) -> str:
    return "" if value is None else str(value)


def account_rows(session: Session, uid: int) -> list[dict[str, str]]:
    """The user's accounts as the table's rows, each with its own limits and what it holds."""
    own = {v["account_id"]: v for v in gate.accounts_view(session, uid)}
    return [_row(a, own[a.id]) for a in accounts.list_accounts(session, uid)]


def _row(a: accounts.AccountView, own: dict[str, int | None]) -> dict[str, str]:
    return {
        "id": str(a.id),
        "label": a.label,
        "client_id": a.client_id,
        "server": a.base_url or "Angel One",
        "egress": _egress(a),
        "egress_ip": a.egress_ip or "—",
        "simulated": "yes" if a.is_simulated else "no",
        # The editable non-secret values, for the edit form (secrets are never sent back).
        "base_url": a.base_url or "",
        "egress_proxy": a.egress_proxy or "",
        "egress_ip_value": a.egress_ip or "",
        "egress_source_ip_value": a.egress_source_ip or "",
        "secrets": "API key, PIN, TOTP set"
        if (a.has_api_key and a.has_pin and a.has_totp_secret)
        else "incomplete",
        "limits": limits_text(own),
        **{name: _limit_value(own[name]) for name in LIMIT_FIELDS},
    }


def session_state(account_id: int) -> str:
    """The broker session as the workers share it through Redis (no login happens here)."""
    from ats_app.engine.broker.session import session_key
    from ats_app.engine.store.queueing import connection

    try:
        ttl_ms = connection().pttl(session_key(account_id))
    except Exception:
        return "unknown (Redis down)"
    if ttl_ms is None or ttl_ms < 0:
        return "not logged in"
    return f"logged in, {ttl_ms // 3_600_000}h {ttl_ms // 60_000 % 60}m left"


class AccountsState(ConfirmDelete, AuthState):
    def _delete_row(self, session: Session, uid: int, row_id: int) -> None:
        accounts.delete_account(session, uid, row_id)

    rows: list[dict[str, str]] = []
    editing_id: int = 0  # 0: the form adds a new account
    edit_label: str = ""
    edit_values: dict[str, str] = {}  # non-secret fields of the account being edited
    test_results: dict[str, str] = {}

    def _reload(self, uid: int) -> None:
        with session_scope() as s:
            rows = account_rows(s, uid)
        self.rows = [{**r, "session": session_state(int(r["id"]))} for r in rows]

    @rx.event
    def load(self):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        self.error = self.message = ""
        self._reload(uid)
        return None

    @rx.event
    def save(self, form: dict[str, str]):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        self.error = self.message = ""
        try:
            self.message = save_account(uid, self.editing_id, form)
        except AtsError as exc:
            self.error = sentence(exc)
            return None
        # An old "OK" no longer speaks for the changed settings.
        self.test_results.pop(str(self.editing_id), None)
        self.editing_id, self.edit_values = 0, {}
        self._reload(uid)
        return rx.call_script("document.getElementById('account-form').reset()")

    @rx.event
    def add_simulated(self):
        """One click: an account on the built-in simulator (its demo login)."""
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        from ats_app.simulator.config import demo_account

        demo = demo_account()
        self.error = self.message = ""
        try:
            with session_scope() as s:
                accounts.add_account(
                    s,
                    uid,
                    label="Simulated Angel One",
                    client_id=demo.client_code,
                    api_key="simulator",
                    pin=demo.pin,
                    totp_secret=demo.totp_secret,
                    base_url=f"http://127.0.0.1:{settings().simulator_port}",
                    is_simulated=True,
                )
        except AtsError as exc:
            self.error = sentence(exc)
            return None
        self.message = "Simulated account added: it trades on the built-in simulator."
        self._reload(uid)
        return None

    @rx.event
    def start_edit(self, account_id: str):
        row = next((r for r in self.rows if r["id"] == account_id), None)
        if row:
            self.editing_id = int(account_id)
            self.edit_label = row["label"]
            self.edit_values = edit_values(row)

    @rx.event
    def cancel_edit(self):
        self.editing_id, self.edit_values = 0, {}

    @rx.event
    def test_connection(self, account_id: str):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        from ats_app.engine.broker.factory import test_connection

        self.test_results[account_id] = "testing…"
        yield
        try:
            with session_scope() as s:
                report = test_connection(s, uid, int(account_id))
            text = ("OK: " if report.ok else "Failed: ") + report.message
            if report.egress_ip:
                text += f" (orders leave from {report.egress_ip})"
        except Exception as exc:
            text = f"Failed: {exc}"
        self.test_results[account_id] = text
