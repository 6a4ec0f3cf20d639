"""Fixtures for the risk tests: the SmartAPI simulator, a trader with live links and a fake
trading-day clock (`ATS_FAKE_NOW`, honoured by worker processes too)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ats_app.engine.core.config import reset_settings_cache
from ats_app.engine.risk import bot
from ats_app.engine.store.db import session_scope
from ats_app.engine.tenants import accounts, webhooks
from ats_app.engine.tenants import users as users_mod
from ats_app.simulator.config import AccountSpec, SimConfig, demo_account
from ats_app.simulator.server import ServerThread
from tests.risk.kit import API_KEY, CLIENT, CLIENT2, CLIENT3, IN_SESSION, PIN, SECRET


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerThread]:
    monkeypatch.chdir(tmp_path)  # the SDK writes logs/ into the working directory
    server = ServerThread(
        SimConfig(
            accounts=[AccountSpec(CLIENT, PIN, SECRET), AccountSpec(CLIENT2, PIN, SECRET),
                      AccountSpec(CLIENT3, PIN, SECRET), demo_account()],
            engine_interval_ms=20,
        )
    ).start()
    monkeypatch.setenv("SIMULATOR_PORT", str(server.port))
    monkeypatch.setenv("ATS_SIMULATOR", "true")
    monkeypatch.setenv("ATS_IP_ECHO_URL", "")
    monkeypatch.delenv("SCRIP_MASTER_URL", raising=False)
    reset_settings_cache()
    yield server
    server.stop()


@pytest.fixture
def world(database_url: str, redis_url: str, sim: ServerThread,
          monkeypatch: pytest.MonkeyPatch) -> dict:
    """A live trader on the simulator, two live links on one account, bot running, and the
    clock at 10:00 IST on a trading day."""
    monkeypatch.setenv("TRADING_MODE", "live")
    monkeypatch.setenv("ATS_FAKE_NOW", IN_SESSION)
    reset_settings_cache()
    with session_scope() as s:
        uid = users_mod.create_user(s, "trader", "password123", "T", "R").id
        acc = accounts.add_account(s, uid, label="sim", client_id=CLIENT, api_key=API_KEY,
                                   pin=PIN, totp_secret=SECRET, base_url=sim.base_url)
        links = {}
        for name in ("a", "b"):
            link, secret = webhooks.create_link(
                s, uid, name=name, accounts=[webhooks.LinkAccount(acc.id, 1)], strategy_id=None,
                stop_loss_pct=50, target_pct=100, trailing_stop_pct=None, paper=False)
            links[name] = (link.token, secret)
        bot.set_running(s, uid, True)
    return {"user": uid, "account": acc.id, "links": links, "sim": sim}
