"""The Alerts page's reads (`execution.alert_detail`) on real SQLite and PostgreSQL, and the
state's formatting of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from ats_app.engine.core.clock import ist_stamp
from ats_app.engine.core.errors import NotFound
from ats_app.engine.execution import alert_detail
from ats_app.engine.store.models import Alert, AlertTarget, Order
from ats_app.engine.tenants import accounts, users, webhooks
from ats_app.state.alerts import account_row, accounts_summary, alert_row, latency

RECEIVED = datetime(2026, 12, 6, 9, 2, 5, 250_000, tzinfo=UTC)  # 14:32:05 IST
LIMIT = "account's max open positions reached (0 of 0)"


def _account(s: Session, uid: int, label: str) -> int:
    return accounts.add_account(s, uid, label=label, client_id=f"C{label[-1]}", api_key="k",
                                pin="1234", totp_secret="KRSXG5CTMVRXEZLU").id  # type: ignore


def _user(s: Session, name: str) -> dict:
    uid = users.create_user(s, name, "password123", "F", "L").id
    assert uid is not None
    ids = [_account(s, uid, f"{name}-{c}") for c in "ABC"]
    link, _ = webhooks.create_link(s, uid, name=f"{name} ORB", strategy_id=None,
                                   stop_loss_pct=5, target_pct=None, trailing_stop_pct=None,
                                   accounts=[webhooks.LinkAccount(a, 1) for a in ids])
    return {"user": uid, "accounts": ids, "link": link.id}


def _alert(s: Session, w: dict, key: str, status: str = "DONE", reason: str | None = None,
           received: datetime = RECEIVED) -> int:
    a = Alert(user_id=w["user"], link_id=w["link"], dedup_key=key, payload="{}",
              action="buy", symbol="NIFTY", status=status, reason=reason, received_at=received)
    s.add(a)
    s.flush()
    assert a.id is not None
    return a.id


def _order(s: Session, w: dict, alert_id: int, account_id: int, tag: str, status: str,
           after_ms: int, done_ms: int, reason: str = "entry signal", **kw: object) -> int:
    o = Order(user_id=w["user"], alert_id=alert_id, account_id=account_id, client_order_id=tag,
              exchange="NFO", symbol="NIFTY26DEC24000CE", symbol_token="1", side="BUY",
              quantity=75, status=status, reason=reason,
              created_at=RECEIVED + timedelta(milliseconds=after_ms),
              updated_at=RECEIVED + timedelta(milliseconds=done_ms), **kw)  # type: ignore
    s.add(o)
    s.flush()
    assert o.id is not None
    return o.id


def _target(s: Session, w: dict, alert_id: int, account_id: int | None, outcome: str,
            order_id: int | None = None, reason: str | None = None) -> None:
    s.add(AlertTarget(alert_id=alert_id, user_id=w["user"], account_id=account_id,
                      account_key=account_id or 0, outcome=outcome, order_id=order_id,
                      reason=reason))
    s.flush()


@pytest.fixture
def fanned(session: Session) -> dict:
    """One alert on three accounts: filled, refused by the account's own limit, rejected by
    the broker."""
    w = _user(session, "asha")
    a, b, c = w["accounts"]
    alert_id = _alert(session, w, "one", reason="rejected: " + LIMIT)
    filled = _order(session, w, alert_id, a, "A1E1", "FILLED", 14, 342, filled_quantity=75,
                    average_price_paise=12345)
    _target(session, w, alert_id, a, "ORDERED", filled)
    _target(session, w, alert_id, b, "REFUSED", reason=LIMIT)
    rejected = _order(session, w, alert_id, c, "A1E3", "REJECTED", 15, 180,
                      reason="RMS: margin exceeds")
    _target(session, w, alert_id, c, "ORDERED", rejected)
    session.commit()
    return {**w, "alert": alert_id}


def test_detail_has_one_row_per_account_with_its_order_latency_or_reason(
        session: Session, fanned: dict) -> None:
    d = alert_detail.alert_detail(session, fanned["user"], fanned["alert"])
    assert (d["id"], d["link"], d["status"], d["ordered"], d["not_traded"]) == (
        fanned["alert"], "asha ORB", "DONE", 2, 1)
    assert d["received_ist"] == "2026-12-06 14:32:05 IST"
    filled, refused, rejected = d["accounts"]
    assert filled == {
        "account": "asha-A", "outcome": "ORDERED", "ordertag": "A1E1", "order_status": "FILLED",
        "filled_quantity": 75, "quantity": 75, "fill_price": "123.45",
        "created_ms": 14, "updated_ms": 342, "reason": "",  # "entry signal" is not a reason
    }
    assert (refused["account"], refused["outcome"], refused["reason"]) == (
        "asha-B", "REFUSED", LIMIT)
    assert (refused["ordertag"], refused["created_ms"], refused["fill_price"]) == ("", None, "")
    assert (rejected["order_status"], rejected["reason"], rejected["fill_price"]) == (
        "REJECTED", "RMS: margin exceeds", "")


def test_another_users_alert_is_not_found_and_not_listed(session: Session, fanned: dict) -> None:
    other = _user(session, "ravi")
    mine = _alert(session, other, "theirs", status="PLACED")
    session.commit()
    with pytest.raises(NotFound):
        alert_detail.alert_detail(session, other["user"], fanned["alert"])
    with pytest.raises(NotFound):
        alert_detail.alert_detail(session, fanned["user"], mine)
    with pytest.raises(NotFound):
        alert_detail.alert_detail(session, fanned["user"], 999_999)
    assert [a["id"] for a in alert_detail.recent_alerts(session, other["user"])] == [mine]
    assert alert_detail.alert_detail(session, other["user"], mine)["accounts"] == []


def test_recent_alerts_newest_first_with_counts_and_limit(session: Session, fanned: dict) -> None:
    later = _alert(session, fanned, "two", status="IGNORED", reason="bot_stopped",
                   received=RECEIVED + timedelta(minutes=5))
    paper = _alert(session, fanned, "three", received=RECEIVED + timedelta(minutes=6))
    _target(session, fanned, paper, None, "IGNORED", reason="position already open")
    session.commit()
    rows = alert_detail.recent_alerts(session, fanned["user"])
    assert [r["id"] for r in rows] == [paper, later, fanned["alert"]]
    assert [(r["ordered"], r["not_traded"]) for r in rows] == [(0, 1), (0, 0), (2, 1)]
    assert rows[1]["reason"] == "the bot was stopped: recorded, not traded"
    assert rows[1]["received_ist"] == "2026-12-06 14:37:05 IST"
    assert rows[2]["action"] == "buy" and rows[2]["symbol"] == "NIFTY"
    assert [r["id"] for r in alert_detail.recent_alerts(session, fanned["user"], limit=1)] == [
        paper]
    (row,) = alert_detail.alert_detail(session, fanned["user"], paper)["accounts"]
    assert (row["account"], row["outcome"], row["reason"]) == (
        "paper", "IGNORED", "position already open")


def test_an_order_without_a_target_row_is_still_shown(session: Session) -> None:
    """Alerts processed before per-account rows existed: each account's latest order."""
    w = _user(session, "meera")
    alert_id = _alert(session, w, "old")
    _order(session, w, alert_id, w["accounts"][0], "A9E1", "FAILED", 5, 6)
    _order(session, w, alert_id, w["accounts"][0], "A9E1R1", "OPEN", 40, 90)  # the retry
    session.commit()
    (row,) = alert_detail.alert_detail(session, w["user"], alert_id)["accounts"]
    assert (row["account"], row["ordertag"], row["order_status"], row["reason"]) == (
        "meera-A", "A9E1R1", "OPEN", "")  # still working: no reason yet


def test_page_formatting() -> None:
    assert ist_stamp(RECEIVED) == "2026-12-06 14:32:05 IST"
    assert accounts_summary(2, 1) == "2 ordered · 1 not traded"
    assert accounts_summary(0, 3) == "3 not traded" and accounts_summary(0, 0) == ""
    assert (latency(None), latency(1234)) == ("", "1,234 ms")
    alert = {"id": 7, "action": "buy", "symbol": "NIFTY", "reason": "", "ordered": 1,
             "not_traded": 0, "accounts": []}
    row = alert_row(alert)
    assert (row["id"], row["accounts"], row["signal"]) == ("7", "1 ordered", "BUY NIFTY")
    refusal = {**alert, "code": 401, "reason": "wrong or missing secret", "body": "{...}"}
    assert "body" not in alert_row(refusal)  # the list carries no bodies; the detail does
    assert alert_row(refusal, with_body=True)["body"] == "{...}"
    assert alert_row(refusal)["reason"] == "401 · wrong or missing secret"
    refused = {"account": "B", "outcome": "REFUSED", "ordertag": "", "order_status": "",
               "filled_quantity": 0, "quantity": 0, "fill_price": "", "created_ms": None,
               "updated_ms": None, "reason": LIMIT}
    assert account_row(refused)["filled"] == "" and account_row(refused)["created_after"] == ""
    filled = {**refused, "ordertag": "A1E1", "filled_quantity": 75, "quantity": 75,
              "created_ms": 14, "updated_ms": 342}
    assert (account_row(filled)["filled"], account_row(filled)["updated_after"]) == (
        "75 of 75", "342 ms")
