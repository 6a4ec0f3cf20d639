"""The feed follows the index spots ATM strikes are picked from, positions or not, so an
option alert's job reads its underlying's spot from Redis instead of spending a quote (Angel
allows 10 a second, 50-150 ms each) on the order path."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import httpx
import pytest
import redis
from sqlmodel import select
from starlette.testclient import TestClient

from ats_app.api import build_api
from ats_app.engine.broker.prices import read_tick, write_tick
from ats_app.engine.core.config import reset_settings_cache
from ats_app.engine.execution import contracts, entry
from ats_app.engine.market.feed_sources import SPOT_UNDERLYINGS, SourceResolver
from ats_app.engine.market.resolve import resolve_option
from ats_app.engine.market.tickbus import FEED_SPOTS_KEY
from ats_app.engine.risk import bot
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Order, utcnow
from ats_app.engine.tenants import accounts, users, webhooks
from ats_app.simulator.config import DEMO_TOTP_SECRET, demo_account
from ats_app.simulator.server import ServerThread
from tests.monitor.kit import Procs, sim_price, sim_subscribed, wait_for

FEED = ["ats_app.engine.services.feed"]


def _spots(sim: ServerThread) -> dict[str, str]:
    """Underlying -> spot token, from the simulator's own master (it lacks some names)."""
    index = contracts.index_for(sim.base_url)
    rows = {n: index.spot_instrument(n) for n in SPOT_UNDERLYINGS}
    return {n: r.token for n, r in rows.items() if r is not None}


def _quotes(sim: ServerThread) -> int:
    calls = httpx.get(f"{sim.base_url}/sim/health", timeout=5).json()["calls"]
    return int(calls.get("quote", 0)) + int(calls.get("getLtpData", 0))


def test_the_feed_follows_the_index_spots_without_positions(
        database_url: str, rds: redis.Redis, sim: ServerThread, procs: Procs) -> None:
    spots = _spots(sim)
    assert {"NIFTY", "BANKNIFTY", "FINNIFTY"} <= set(spots)  # the simulator's indices
    procs.start("feed", FEED)
    wait_for(lambda: sim_subscribed(sim) == set(spots.values()), 20,
             "the index spots subscribed")
    wait_for(lambda: rds.get(FEED_SPOTS_KEY) == sim.base_url.encode(), 5,
             "the feed to name the spots' server")
    for name, token in spots.items():
        tick = wait_for(lambda t=token: read_tick(rds, "NSE", t, max_age=2.0), 10,
                        f"{name}'s spot in Redis")
        sim_rupees = Decimal(sim.state.market.quote(token).ltp) / 100  # paise there
        assert abs(tick.ltp - sim_rupees) < tick.ltp * Decimal("0.01"), (name, tick, sim_rupees)


def test_an_atm_entry_takes_its_spot_from_the_feed_not_a_quote(
        database_url: str, rds: redis.Redis, sim: ServerThread, procs: Procs,
        monkeypatch: pytest.MonkeyPatch) -> None:
    link = _live_link(sim, monkeypatch)
    nifty = _spots(sim)["NIFTY"]
    sim_price(sim, nifty, ltp=Decimal("26010"))  # held: the strike cannot move under the test
    procs.start("feed", FEED)
    wait_for(lambda: read_tick(rds, "NSE", nifty, max_age=1.0), 20, "NIFTY's spot in Redis")
    before = _quotes(sim)
    order = _atm_entry(link)
    assert _quotes(sim) == before, "the job quoted the spot instead of reading the feed"
    want = resolve_option(contracts.index_for(sim.base_url), underlying="NIFTY",
                          option_type="CE", strike="ATM", spot=Decimal("26010"), on=utcnow())
    assert want.strike == Decimal("26000")
    assert order.symbol_token == want.token, (order.tradingsymbol, want.tradingsymbol)


def _live_link(sim: ServerThread, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.setenv("TRADING_MODE", "live")
    monkeypatch.delenv("MARKET_HOURS")  # live trading keeps NSE hours: ATS_FAKE_NOW is 10:00
    reset_settings_cache()
    demo = demo_account()
    with session_scope() as s:
        uid = users.create_user(s, "spot", "password123", "S", "P").id
        acct = accounts.add_account(s, uid, label="sim", client_id=demo.client_code,
                                    api_key="k", pin=demo.pin, totp_secret=DEMO_TOTP_SECRET,
                                    base_url=sim.base_url).id
        link, secret = webhooks.create_link(
            s, uid, name="atm", strategy_id=None, stop_loss_pct=5, target_pct=10,
            trailing_stop_pct=None, paper=False,
            accounts=[webhooks.LinkAccount(acct, 1)])  # type: ignore[arg-type]
        bot.set_running(s, uid, True)
    return link.token, secret


def _atm_entry(link: tuple[str, str]) -> Order:
    body = {"secret": link[1], "action": "buy", "symbol": "NIFTY", "option": "CE",
            "strike": "ATM", "lots": 1, "id": "atm-1"}
    resp = TestClient(build_api()).post(f"/webhook/{link[0]}", content=json.dumps(body))
    assert resp.status_code == 202, resp.text
    alert_id = resp.json()["alert_id"]
    entry.handle_alert(alert_id)
    with session_scope() as s:
        (order,) = s.exec(select(Order).where(Order.alert_id == alert_id)).all()
    return order


def test_a_spot_tick_older_than_the_spot_max_age_is_quoted_afresh(
        database_url: str, rds: redis.Redis, sim: ServerThread,
        monkeypatch: pytest.MonkeyPatch) -> None:
    link = _live_link(sim, monkeypatch)
    nifty = _spots(sim)["NIFTY"]
    sim_price(sim, nifty, ltp=Decimal("26010"))
    # No feed; as if it followed this server's spots, its tick within the feed's 10 s
    # default but past SPOT_MAX_AGE_S, and far off the spot.
    rds.set(FEED_SPOTS_KEY, sim.base_url)
    age = (contracts.SPOT_MAX_AGE_S + 10.0) / 2
    write_tick(rds, "NSE", nifty, Decimal("25000"), at=time.time() - age)
    before = _quotes(sim)
    order = _atm_entry(link)
    assert _quotes(sim) == before + 1, "the old tick was used, no quote made"
    want = resolve_option(contracts.index_for(sim.base_url), underlying="NIFTY",
                          option_type="CE", strike="ATM", spot=Decimal("26010"), on=utcnow())
    assert order.symbol_token == want.token, (order.tradingsymbol, want.tradingsymbol)


def test_spots_from_another_server_are_not_used(
        database_url: str, rds: redis.Redis, sim: ServerThread,
        monkeypatch: pytest.MonkeyPatch) -> None:
    link = _live_link(sim, monkeypatch)
    nifty = _spots(sim)["NIFTY"]
    sim_price(sim, nifty, ltp=Decimal("26010"))
    # A fresh tick under the same token, but the feed follows Angel's spots, not this server's.
    rds.set(FEED_SPOTS_KEY, "angel")
    write_tick(rds, "NSE", nifty, Decimal("25000"))
    before = _quotes(sim)
    order = _atm_entry(link)
    assert _quotes(sim) == before + 1, "another server's spot was used"
    want = resolve_option(contracts.index_for(sim.base_url), underlying="NIFTY",
                          option_type="CE", strike="ATM", spot=Decimal("26010"), on=utcnow())
    assert order.symbol_token == want.token, (order.tradingsymbol, want.tradingsymbol)


def test_the_spots_source_is_a_running_users_first_account(
        database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATS_SIMULATOR", "false")
    reset_settings_cache()
    with session_scope() as s:
        idle = users.create_user(s, "idle", "password123", "I", "D").id
        busy = users.create_user(s, "busy", "password123", "B", "U").id
        accounts.add_account(s, idle, label="a", client_id="IDLE1", api_key="k", pin="1234",
                             totp_secret=DEMO_TOTP_SECRET)
        accounts.add_account(s, busy, label="b", client_id="BUSY1", api_key="k", pin="1234",
                             totp_secret=DEMO_TOTP_SECRET)
        accounts.add_account(s, busy, label="c", client_id="BUSY2", api_key="k", pin="1234",
                             totp_secret=DEMO_TOTP_SECRET)
        assert SourceResolver().for_spots(s) is None  # nobody's bot runs: no spots
        bot.set_running(s, busy, True)
        bot.set_running(s, idle, False)
        creds = SourceResolver().for_spots(s)
        assert creds is not None and creds.client_id == "BUSY1"
