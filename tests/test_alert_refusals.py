"""Refused requests to a user's link are kept for the Alerts page, their bodies with every
secret masked: through the real webhook route on SQLite and PostgreSQL, with real Redis."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import select
from starlette.testclient import TestClient

from ats_app.api import build_api
from ats_app.engine.core.clock import IST
from ats_app.engine.execution import alert_detail
from ats_app.engine.execution.alert_detail import AlertQuery, plain_reason
from ats_app.engine.intake.refusals import MASK, mask_body
from ats_app.engine.risk import bot
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import AuditEvent, RefusedAlert
from ats_app.engine.tenants import users, webhooks


def _link(s, uid: int, name: str) -> dict:
    view, secret = webhooks.create_link(s, uid, name=name, accounts=[], strategy_id=None,
                                        stop_loss_pct=1, target_pct=2, trailing_stop_pct=None,
                                        paper=True)
    return {"user_id": uid, "token": view.token, "secret": secret, "id": view.id}


@pytest.fixture
def world(database_url: str, redis_url: str) -> dict:
    with session_scope() as s:
        uid = users.create_user(s, "trader", "password123", "T", "R").id
        other = users.create_user(s, "other", "password123", "O", "R").id
        assert uid is not None and other is not None
        a, b = _link(s, uid, "nifty"), _link(s, uid, "bank")
        theirs = _link(s, other, "theirs")
        for u in (uid, other):
            bot.set_running(s, u, True)
    return {"user": uid, "other": other, "a": a, "b": b, "theirs": theirs}


def _post(link: dict, body: bytes | str) -> int:
    client = TestClient(build_api())
    return client.post(f"/webhook/{link['token']}", content=body).status_code


def _good(link: dict, **fields: object) -> dict:
    return {"secret": link["secret"], "action": "buy", "symbol": "NIFTY", "option": "CE",
            "strike": "ATM", "lots": 1, **fields}


def test_refusals_are_listed_with_reason_and_masked_body(world: dict) -> None:
    a, b = world["a"], world["b"]
    stale = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    assert _post(a, json.dumps({"secret": "old-secret-123", "action": "buy"})) == 401
    assert _post(a, json.dumps(_good(a, time=stale))) == 422  # stale
    # A repeated key keeps the real secret twice in the raw text; not JSON keeps it raw.
    repeated = '{"secret": "' + b["secret"] + '", "action": "buy", "action": "sell"}'
    assert _post(b, repeated) == 422
    assert _post(b, f'secret={b["secret"]} buy NIFTY') == 400
    assert _post(a, json.dumps(_good(a, id="ok-1"))) == 202
    assert _post(world["theirs"], json.dumps({"secret": "x", "action": "buy"})) == 401

    with session_scope() as s:  # (the repeat below is the newest row)
        rows = alert_detail.list_alerts(s, world["user"])
    assert _post(a, json.dumps(_good(a, id="ok-1"))) == 200  # a repeat: kept, not traded
    with session_scope() as s:
        repeat, *rest = alert_detail.list_alerts(s, world["user"])
        repeats = alert_detail.list_alerts(s, world["user"], AlertQuery(status="DUPLICATE"))
        s.exec(sa.delete(RefusedAlert).where(RefusedAlert.status_code == 200))
    assert rest == rows and repeats == [repeat]
    assert (repeat["status"], repeat["code"], repeat["link"]) == ("DUPLICATE", 200, "nifty")
    assert repeat["reason"] == (
        f"a repeat, not traded again: the same alert as alert #{rows[0]['id']}")
    assert a["secret"] not in repeat["body"] and '"id": "ok-1"' in repeat["body"]

    with session_scope() as s:
        rows = alert_detail.list_alerts(s, world["user"])
        stored = s.exec(select(RefusedAlert)).all()
        audited = s.exec(select(AuditEvent).where(AuditEvent.action == "webhook.refused")).all()
    assert len(stored) == 5 and len(audited) == 5  # each refusal audited and kept
    # Newest first: the accepted alert, then the refusals; the other user's not among them.
    assert [r["status"] for r in rows] == ["ACCEPTED"] + ["REFUSED"] * 4
    refused = rows[1:]
    assert [r["code"] for r in refused] == [400, 422, 422, 401]
    assert [r["link"] for r in refused] == ["bank", "bank", "nifty", "nifty"]
    assert refused[3]["reason"] == "wrong or missing secret"
    assert "stale" in refused[2]["reason"] and refused[2]["reason"].startswith("a field was")
    assert refused[2]["action"] == "buy" and refused[2]["symbol"] == "NIFTY"
    assert refused[0]["reason"].startswith("not valid JSON")
    for r in refused:
        assert MASK in r["body"], r["body"]
        for secret in (a["secret"], b["secret"], "old-secret-123"):
            assert secret not in r["body"]
        assert r["key"] == f"r{r['id']}" and r["received_ist"].endswith(" IST")
    assert '"action": "sell"' in refused[1]["body"]  # the refused body as sent, masked

    with session_scope() as s:
        only_b = alert_detail.list_alerts(s, world["user"], AlertQuery(link_id=b["id"]))
        only_refused = alert_detail.list_alerts(s, world["user"], AlertQuery(status="REFUSED"))
        only_accepted = alert_detail.list_alerts(s, world["user"],
                                                 AlertQuery(status="ACCEPTED"))
        today = datetime.now(IST).date()
        on_today = alert_detail.list_alerts(s, world["user"],
                                            AlertQuery(day_from=today, day_to=today))
        yesterday = alert_detail.list_alerts(
            s, world["user"], AlertQuery(day_to=today - timedelta(days=1)))
        theirs = alert_detail.list_alerts(s, world["other"])
        detail = alert_detail.refused_detail(s, world["user"], refused[3]["id"])
        with pytest.raises(alert_detail.NotFound):
            alert_detail.refused_detail(s, world["other"], refused[3]["id"])
    assert {r["link"] for r in only_b} == {"bank"} and len(only_b) == 2
    assert len(only_refused) == 4 and [r["status"] for r in only_accepted] == ["ACCEPTED"]
    assert len(on_today) == 5 and yesterday == []
    assert [(r["link"], r["code"]) for r in theirs] == [("theirs", 401)]
    assert detail["body"] == refused[3]["body"] and detail["accounts"] == []


def test_mask_body_and_plain_reason() -> None:
    secret = "S3cr3t-value_xyz"
    assert mask_body(None) == ""
    masked = mask_body(f'{{"Secret": "{secret}", "id": "{secret}"}}'.encode(), [secret])
    assert secret not in masked and masked.count(MASK) == 2
    # A secret spelled with \u escapes is still the secret.
    escaped = '{"secret": "\\u0053' + secret[1:] + '", "action": "buy"}'
    assert "3cr3t-value" not in mask_body(escaped.encode())
    # Cut short inside the secret's string, or a bare number: still masked.
    assert mask_body(b'{"secret": "abcdefgh') == f'{{"secret": "{MASK}"'
    assert mask_body(b'{"secret": 12345678, "a": 1}') == f'{{"secret": "{MASK}", "a": 1}}'
    long = mask_body(b'{"secret": "' + secret.encode() + b'", "x": "' + b"y" * 9000 + b'"}')
    assert len(long) == 4001 and long.endswith("…") and secret not in long
    assert mask_body("naïve \xff".encode("latin-1")).startswith("na")  # not UTF-8: replaced
    assert plain_reason(401, "missing or wrong secret") == "wrong or missing secret"
    assert plain_reason(429, "more than 120 alerts a minute for this link") == (
        "too many alerts a minute: more than 120 alerts a minute for this link")
    assert plain_reason(418, "") == "refused (418)"
    with pytest.raises(ValueError, match="unknown status"):
        alert_detail.list_alerts(None, 1, AlertQuery(status="NOPE"))  # type: ignore[arg-type]
    assert date(2026, 1, 1)  # (dates used above through AlertQuery)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_refusal_answers_even_when_its_database_connection_is_killed(
        world: dict, database_url: str) -> None:
    """PostgreSQL kills the connection writing the refusal's row (as the soak does with
    pg_terminate_backend): TradingView still gets its 401, not a 500, and the row is
    written on a fresh connection."""
    import psycopg
    from sqlalchemy import event

    from ats_app.engine.store.db import get_engine

    killed: list[int] = []

    def kill_once(conn, _cursor, statement: str, *_args: object) -> None:  # type: ignore[no-untyped-def]
        if "INSERT INTO refused_alerts" in statement and not killed:
            pid = conn.connection.dbapi_connection.info.backend_pid
            with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            killed.append(pid)

    event.listen(get_engine(), "before_cursor_execute", kill_once)
    try:
        assert _post(world["a"], json.dumps({"secret": "wrong-one", "action": "buy"})) == 401
    finally:
        event.remove(get_engine(), "before_cursor_execute", kill_once)
    assert killed
    with session_scope() as s:
        rows = s.exec(select(RefusedAlert)).all()
    assert [r.status_code for r in rows] == [401]
