"""An account's egress setting: a proxy URL or a local source address, never both.

Refused input changes nothing and is audited; editing through the Accounts form keeps every
non-secret value the trader did not touch (SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import pytest
from sqlmodel import select

from ats_app.engine.core.errors import ValidationError
from ats_app.engine.risk import gate
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import AuditEvent, BrokerAccount
from ats_app.engine.tenants import accounts, users
from ats_app.state.accounts import account_rows, edit_values, save_account

TOTP = "JBSWY3DPEHPK3PXP"
PROXY = "http://10.0.0.2:8888"


@pytest.fixture
def uid(database_url: str) -> int:
    with session_scope() as s:
        user_id = users.create_user(s, "trader", "password123", "T", "X").id
    assert user_id is not None
    return user_id


def _add(uid: int, **kw: Any) -> accounts.AccountView:
    with session_scope() as s:
        return accounts.add_account(s, uid, label=kw.pop("label", "main"), client_id="A1",
                                    api_key="k", pin="1234", totp_secret=TOTP, **kw)


def _rows() -> list[dict[str, Any]]:
    with session_scope() as s:
        return [r.model_dump() for r in s.exec(select(BrokerAccount)).all()]


def _events(action: str) -> list[AuditEvent]:
    with session_scope() as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)
                           .order_by(AuditEvent.id)).all())


def _refusals() -> list[dict[str, Any]]:
    return [{"subject": e.subject, **json.loads(e.detail)} for e in _events("account.refused")]


def _form(**kw: str) -> dict[str, str]:
    base = {"label": "main", "client_id": "A1", "api_key": "k", "pin": "1234",
            "totp_secret": TOTP}
    return {**base, **kw}


def test_source_address_is_stored_normalised_and_reaches_the_credentials(uid: int) -> None:
    v4 = _add(uid, egress_source_ip=" 127.0.0.5 ", egress_ip="203.0.113.7")
    v6 = _add(uid, label="v6", egress_source_ip="0:0:0:0:0:0:0:1")
    assert v4.egress_source_ip == "127.0.0.5" and v4.egress_proxy is None
    assert v6.egress_source_ip == "::1"
    with session_scope() as s:
        assert accounts.credentials(s, uid, v4.id).egress_source_ip == "127.0.0.5"


@pytest.mark.parametrize(("value", "words"), [
    ("127.0.0.300", "IPv4 or IPv6 address"),
    ("eth0", "IPv4 or IPv6 address"),
    ("0.0.0.0", "cannot be sent from"),  # "any address": would silently change nothing
    ("224.0.0.1", "cannot be sent from"),
])
def test_bad_source_address_is_refused_in_the_form_and_audited(
        uid: int, value: str, words: str) -> None:
    with pytest.raises(ValidationError) as err:
        save_account(uid, 0, _form(egress_source_ip=value))
    assert err.value.field == "egress_source_ip" and words in str(err.value)
    assert _rows() == []
    assert _refusals() == [{"subject": "new", "field": "egress_source_ip",
                            "error": str(err.value)}]


def test_proxy_and_source_address_together_are_refused(uid: int) -> None:
    with pytest.raises(ValidationError) as err:
        save_account(uid, 0, _form(egress_proxy=PROXY, egress_source_ip="127.0.0.5"))
    assert "egress proxy" in str(err.value) and "local source address" in str(err.value)
    assert "not both" in str(err.value)
    assert _rows() == []

    # Editing: adding a source address to an account that has a proxy is refused too, and
    # nothing of that edit (not even the new label in the same form) is applied.
    acct = _add(uid, egress_proxy=PROXY)
    before = _rows()
    with pytest.raises(ValidationError):
        save_account(uid, acct.id, {"label": "renamed", "egress_proxy": PROXY,
                                    "egress_source_ip": "127.0.0.5"})
    # The engine call alone (no egress_proxy argument): the stored proxy counts.
    with pytest.raises(ValidationError), session_scope() as s:
        accounts.update_account(s, uid, acct.id, label="renamed", egress_source_ip="127.0.0.5")
    assert _rows() == before
    assert [r["subject"] for r in _refusals()] == ["new", str(acct.id)]

    # Clearing the proxy in the same edit is the way to switch.
    assert save_account(uid, acct.id, {"label": "main", "egress_proxy": "",
                                       "egress_source_ip": "127.0.0.5"}) == "Account updated."
    with session_scope() as s:
        view = accounts.get_account(s, uid, acct.id)
    assert view.egress_proxy is None and view.egress_source_ip == "127.0.0.5"


def test_bad_source_address_in_an_edit_changes_nothing(uid: int) -> None:
    acct = _add(uid, egress_source_ip="127.0.0.5", base_url="http://127.0.0.1:9100")
    before = _rows()
    with pytest.raises(ValidationError):
        save_account(uid, acct.id, {"label": "renamed", "pin": "9999",
                                    "base_url": "http://127.0.0.1:9200",
                                    "egress_source_ip": "not-an-ip"})
    assert _rows() == before


@pytest.mark.parametrize("egress", [
    {"egress_source_ip": "127.0.0.5"},
    {"egress_proxy": PROXY},
])
def test_editing_only_the_label_keeps_every_other_value(uid: int,
                                                        egress: dict[str, str]) -> None:
    """What the Accounts page does: the edit form starts from `edit_values` of the row,
    secrets stay blank, the trader renames; the server, egress and IPs must survive."""
    acct = _add(uid, base_url="http://127.0.0.1:9100", egress_ip="203.0.113.7", **egress)
    with session_scope() as s:
        gate.set_account_limits(s, uid, acct.id, max_lots_per_order=3)
        before = accounts.get_account(s, uid, acct.id)
        (row,) = account_rows(s, uid)
    form = {**edit_values(row), "label": "renamed", "api_key": "", "pin": "",
            "totp_secret": ""}
    assert save_account(uid, acct.id, form) == "Account updated."
    with session_scope() as s:
        after = accounts.get_account(s, uid, acct.id)
        (row,) = account_rows(s, uid)
    assert asdict(after) == {**asdict(before), "label": "renamed"}
    assert (row["max_open_positions"], row["max_lots_per_order"]) == ("", "3")  # kept


def test_the_form_sets_and_clears_an_accounts_own_limits(uid: int) -> None:
    assert save_account(uid, 0, _form(max_open_positions="2")) == "Account added."
    with session_scope() as s:
        (row,) = account_rows(s, uid)
    assert row["limits"] == "holds 0 · max 2 open"
    account_id = int(row["id"])
    form = {**edit_values(row), "max_lots_per_order": "4"}
    save_account(uid, account_id, form)
    with session_scope() as s:
        (row,) = account_rows(s, uid)
    assert row["limits"] == "holds 0 · max 2 open · max 4 lots/order"
    # Emptied: only the user's limits apply.
    save_account(uid, account_id, {**edit_values(row), "max_open_positions": "",
                                   "max_lots_per_order": ""})
    with session_scope() as s:
        (row,) = account_rows(s, uid)
    assert row["limits"] == "holds 0 · your limits only"
    changes = [json.loads(e.detail) for e in _events("risk.account_limits_set")]
    assert changes == [{"account_id": account_id, "max_open_positions": "2"},
                       {"account_id": account_id, "max_lots_per_order": "4"},
                       {"account_id": account_id, "max_open_positions": None,
                        "max_lots_per_order": None}]


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
def test_a_bad_account_limit_changes_nothing_and_is_audited(uid: int, value: str) -> None:
    acct = _add(uid)
    before = _rows()
    with pytest.raises(ValidationError, match="max open positions must be a whole number"):
        save_account(uid, acct.id, {"label": "renamed", "max_open_positions": value})
    assert _rows() == before  # the rename in the same form is not saved either
    assert _refusals()[-1]["field"] == "max_open_positions"
    with pytest.raises(ValidationError, match="max lots per order"):
        save_account(uid, 0, _form(label="second", client_id="A2", max_lots_per_order=value))
    assert _rows() == before  # no account added
