"""An entry alert's instrument checked at the webhook against the scrip master in memory:
an unknown symbol, an unlisted strike or expiry is a 422 naming the field, not a 202 that
fails in the job; a master not in memory yet is loaded in the background, never waited for."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from ats_app.api import build_api
from ats_app.engine.core.config import reset_settings_cache
from ats_app.engine.core.errors import ValidationError
from ats_app.engine.execution import contracts
from ats_app.engine.execution.entry import paper_master_server
from ats_app.engine.execution.signals import parse_alert
from ats_app.engine.market import scrip_master
from ats_app.engine.market.instruments import IST, InstrumentIndex
from ats_app.engine.risk import bot
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Alert, AuditEvent
from ats_app.engine.tenants import users, webhooks
from ats_app.simulator.config import SimConfig
from ats_app.simulator.scripmaster import ScripMaster, build_instruments
from ats_app.simulator.server import ServerThread

TODAY = datetime.now(IST).date()
# The simulator's master from today: NIFTY/BANKNIFTY/FINNIFTY chains of 41 strikes, weekly
# and monthly expiries, cash rows.
INDEX = InstrumentIndex.from_rows(ScripMaster(build_instruments(TODAY)).rows())
NIFTY_EXPIRIES = INDEX.expiries("NFO", "NIFTY", "CE")
NOW = datetime.combine(TODAY, datetime.min.time(), IST).replace(hour=10).astimezone(UTC)


def _signal(**fields: Any) -> Any:
    return parse_alert({"action": "buy", "symbol": "NIFTY", "option": "CE", "strike": "ATM",
                        "lots": 1, **fields})


def _refused_field(**fields: Any) -> str | None:
    with pytest.raises(ValidationError) as exc:
        contracts.check_listed(_signal(**fields), INDEX, NOW)
    return exc.value.field


def _unlisted_day() -> date:
    day = NIFTY_EXPIRIES[0] + timedelta(days=1)
    while day in NIFTY_EXPIRIES:
        day += timedelta(days=1)
    return day


def test_what_the_master_cannot_resolve_is_named() -> None:
    strikes = INDEX.strikes("NFO", "NIFTY", "CE", NIFTY_EXPIRIES[0])
    assert _refused_field(symbol="NOSUCHSYM") == "symbol"
    assert _refused_field(expiry=_unlisted_day().isoformat()) == "expiry"
    assert _refused_field(strike=str(strikes[0] + 1)) == "strike"  # between listed strikes
    assert _refused_field(strike=f"OTM{len(strikes)}") == "strike"  # more steps than strikes
    assert _refused_field(symbol="NOSUCHSYM", option=None) == "symbol"  # cash: no -EQ row
    assert _refused_field(tradingsymbol="NIFTYNOPE", exchange="NFO", symbol=None,
                          option=None, strike=None) == "tradingsymbol"


def test_what_the_master_lists_passes_and_exits_are_never_checked() -> None:
    strikes = INDEX.strikes("NFO", "NIFTY", "CE", NIFTY_EXPIRIES[0])
    for fields in ({}, {"expiry": "next"}, {"expiry": NIFTY_EXPIRIES[1].isoformat()},
                   {"strike": str(strikes[3])}, {"strike": f"OTM{len(strikes) - 1}"},
                   {"symbol": "BANKNIFTY", "option": "PE", "strike": "ITM2"},
                   {"symbol": "SBIN", "option": None, "strike": None}):
        contracts.check_listed(_signal(**fields), INDEX, NOW)
    exit_signal = parse_alert({"action": "exit", "symbol": "NOSUCHSYM"})
    contracts.check_listed(exit_signal, INDEX, NOW)


# --- through the webhook -----------------------------------------------------------------

@pytest.fixture
def link(database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setattr(contracts, "_indexes", {})  # this process holds no master yet
    with session_scope() as s:
        uid = users.create_user(s, "trader", "password123", "T", "R").id
        view, secret = webhooks.create_link(
            s, uid, name="nifty", accounts=[], strategy_id=None, stop_loss_pct=1,
            target_pct=2, trailing_stop_pct=None, paper=True)
        bot.set_running(s, uid, True)
    return {"token": view.token, "secret": secret}


def _post(client: TestClient, link: dict, **fields: Any) -> Any:
    body = {"secret": link["secret"], "action": "buy", "symbol": "NIFTY", "option": "CE",
            "strike": "ATM", "lots": 1, "id": f"t{time.time_ns()}", **fields}
    return client.post(f"/webhook/{link['token']}", content=json.dumps(body))


def _hold_master(monkeypatch: pytest.MonkeyPatch) -> None:
    key = scrip_master.master_url(paper_master_server())
    monkeypatch.setitem(contracts._indexes, key, (time.monotonic(), INDEX))


def _alert_count() -> int:
    with session_scope() as s:
        return len(s.exec(select(Alert.id)).all())


def test_webhook_refuses_an_unlisted_instrument_with_the_field(
        link: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    _hold_master(monkeypatch)
    client = TestClient(build_api())
    for fields, field in (({"symbol": "NOSUCHSYM"}, "symbol"),
                          ({"expiry": _unlisted_day().isoformat()}, "expiry"),
                          ({"strike": "OTM45"}, "strike")):
        r = _post(client, link, **fields)
        assert r.status_code == 422, r.text
        assert r.json()["field"] == field
    assert _alert_count() == 0  # nothing stored, nothing to trade
    with session_scope() as s:
        refused = s.exec(select(AuditEvent).where(AuditEvent.action == "webhook.refused")).all()
    assert sorted(json.loads(e.detail)["field"] for e in refused) == ["expiry", "strike",
                                                                      "symbol"]
    assert _post(client, link).status_code == 202  # listed: accepted
    r = client.post(f"/webhook/{link['token']}", content=json.dumps(
        {"secret": link["secret"], "action": "exit", "symbol": "NOSUCHSYM"}))
    assert r.status_code == 202  # an exit names no contract: never refused for the master


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerThread]:
    server = ServerThread(SimConfig()).start()
    monkeypatch.setenv("SIMULATOR_PORT", str(server.port))
    monkeypatch.delenv("SCRIP_MASTER_URL", raising=False)
    reset_settings_cache()
    yield server
    server.stop()


def test_a_master_not_in_memory_is_loaded_in_the_background_not_waited_for(
        sim: ServerThread, link: dict) -> None:
    server = paper_master_server()
    assert server == sim.base_url
    assert contracts.cached_index(server) is None
    client = TestClient(build_api())
    r = _post(client, link, symbol="NOSUCHSYM")
    assert r.status_code == 202, r.text  # accepted as before: its job will refuse it
    deadline = time.monotonic() + 30
    while contracts.cached_index(server) is None:  # the ack started the load, off its path
        assert time.monotonic() < deadline, "the master was never loaded"
        time.sleep(0.05)
    r = _post(client, link, symbol="NOSUCHSYM")
    assert r.status_code == 422 and r.json()["field"] == "symbol", r.text
    assert _post(client, link).status_code == 202
    assert _alert_count() == 2
