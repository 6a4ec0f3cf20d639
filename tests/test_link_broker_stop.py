"""A link's "Stop at broker" (`broker_stop`): set and cleared through the engine and the CLI,
refused without a stop to rest, shown in `webhook list/show`, audited."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from ats_app.cli import main
from ats_app.engine.core.errors import ValidationError
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import AuditEvent, WebhookLink
from ats_app.engine.tenants import users, webhooks
from ats_app.state.webhooks import _link_row


@pytest.fixture
def uid(session: Session, redis_url: str) -> int:  # redis: link changes refresh the link cache
    return users.create_user(session, "trader", "password123", "T", "R").id


def _create(session: Session, uid: int, **kw: object) -> webhooks.LinkView:
    fields: dict = {"stop_loss_pct": None, "target_pct": None, "trailing_stop_pct": None, **kw}
    view, _ = webhooks.create_link(session, uid, name="n", accounts=[], strategy_id=None,
                                   paper=True, **fields)
    return view


def _update(session: Session, uid: int, view: webhooks.LinkView, **kw: object) -> \
        webhooks.LinkView:
    fields: dict = {"stop_loss_pct": view.stop_loss_pct, "target_pct": view.target_pct,
                    "trailing_stop_pct": view.trailing_stop_pct, **kw}
    return webhooks.update_link(session, uid, view.id, name=view.name, accounts=[],
                                strategy_id=None, paper=True, enabled=True, **fields)


def test_broker_stop_needs_a_stop_and_is_kept_unless_changed(session: Session,
                                                             uid: int) -> None:
    with pytest.raises(ValidationError) as err:
        _create(session, uid, target_pct="40", broker_stop=True)
    assert err.value.field == "broker_stop"
    assert "stop_loss_pct" in str(err.value) and "trailing_stop_pct" in str(err.value)
    view = _create(session, uid, stop_loss_pct="20", broker_stop=True)
    assert view.broker_stop and _link_row(view, {}, {})["broker_stop"] == "1"
    assert _link_row(view, {}, {})["rules"].endswith(" · stop at broker")
    assert _create(session, uid, trailing_stop_pct="10", broker_stop=True).broker_stop
    # Left out (a caller that knows nothing of it): unchanged.
    assert _update(session, uid, view, target_pct="30").broker_stop is True
    with pytest.raises(ValidationError, match="broker_stop"):  # the stop it rests on, removed
        _update(session, uid, view, stop_loss_pct="0", target_pct="30")
    assert session.get(WebhookLink, view.id).stop_loss_pct == 20  # nothing changed
    off = _update(session, uid, view, stop_loss_pct="0", target_pct="30", broker_stop=False)
    assert (off.broker_stop, off.stop_loss_pct) == (False, None)
    session.commit()  # audit events are written with the commit
    events = session.exec(select(AuditEvent).where(AuditEvent.action.in_(  # type: ignore[attr-defined]
        ["webhook.created", "webhook.updated"])).order_by(AuditEvent.id)).all()
    details = [json.loads(e.detail or "{}") for e in events]
    assert details[0]["broker_stop"] is True
    assert [d.get("broker_stop") for d in details[2:]] == [None, False]  # changes named
    webhooks.record_refusal(uid, view.id, err.value)  # what the Webhooks page does on refusal
    [refused] = session.exec(select(AuditEvent).where(AuditEvent.action == "webhook.refused"))
    assert refused.subject == str(view.id) and json.loads(refused.detail)["field"] == \
        "broker_stop"


def test_webhook_cli_sets_clears_and_lists_broker_stop(database_url: str, redis_url: str,
                                                      capsys: pytest.CaptureFixture) -> None:
    with session_scope() as s:
        users.create_user(s, "ops", "password123", "O", "P")

    def cli(*args: str, code: int = 0) -> dict:
        assert main([*args, "--json"]) == code
        out, err = capsys.readouterr()
        return json.loads(out) if code == 0 else {"stderr": err}

    refused = cli("webhook", "create", "--user", "ops", "--name", "n", "--target", "40",
                  "--paper", "--broker-stop", code=1)
    assert "Stop at broker (broker_stop) needs a stop" in refused["stderr"]
    link = cli("webhook", "create", "--user", "ops", "--name", "n", "--sl", "20", "--target",
               "40", "--paper", "--broker-stop")
    assert link["broker_stop"] is True and "secret" in link
    lid = str(link["id"])
    bad = cli("webhook", "update", "--user", "ops", "--link", lid, "--sl", "off", code=1)
    assert "(field: broker_stop)" in bad["stderr"]
    same = cli("webhook", "update", "--user", "ops", "--link", lid, "--target", "35")
    assert (same["broker_stop"], same["stop_loss_pct"], same["target_pct"]) == (True, 20, 35)
    cleared = cli("webhook", "update", "--user", "ops", "--link", lid, "--no-broker-stop")
    assert cleared["broker_stop"] is False and cleared["target_pct"] == 35
    [listed] = cli("webhook", "list", "--user", "ops")["links"]
    assert listed["broker_stop"] is False and "secret" not in listed
    assert cli("webhook", "update", "--user", "ops", "--link", lid, "--broker-stop")["broker_stop"]
    shown = cli("webhook", "show", "--user", "ops", "--link", lid)
    assert shown["broker_stop"] is True and "secret" not in shown
    with session_scope() as s:
        refusals = s.exec(select(AuditEvent).where(AuditEvent.action == "cli.refused")).all()
    assert len(refusals) == 2 and all("broker_stop" in (e.detail or "") for e in refusals)
