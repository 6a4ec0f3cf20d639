"""broker_for / test_connection from stored accounts (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
import redis
from sqlmodel import Session

from ats_app.engine.broker import factory
from ats_app.engine.broker.angel import AngelBroker
from ats_app.engine.broker.base import Broker, Contract, OrderRequest, Side
from ats_app.engine.broker.paper import PaperBroker
from ats_app.engine.broker.prices import write_tick
from ats_app.engine.core.errors import NotFound, ValidationError
from ats_app.engine.tenants import accounts, users
from tests.simulator.sim_kit import API_KEY, CLIENT, PIN, SECRET, Sim

SBIN = Contract("NSE", "SBIN-EQ", "3045", 1, Decimal("0.05"))


@pytest.fixture
def owner(session: Session) -> int:
    uid = users.create_user(session, "trader", "password123", "Trader", "X").id
    assert uid is not None
    return uid


def _account(session: Session, uid: int, sim: Sim, **kw: str) -> int:
    return accounts.add_account(session, uid, label="main", client_id=CLIENT, api_key=API_KEY,
                                pin=kw.pop("pin", PIN), totp_secret=SECRET,
                                base_url=sim.base_url, **kw).id


def test_brokers_by_mode(session: Session, owner: int, sim: Sim, rds: redis.Redis,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATS_IP_ECHO_URL", "")
    acct = _account(session, owner, sim)
    live = factory.broker_for(session, owner, acct, paper=False, redis=rds)
    assert isinstance(live, AngelBroker) and isinstance(live, Broker) and not live.is_paper
    assert live.session.creds.base_url == sim.base_url
    paper = factory.broker_for(session, owner, acct, paper=True, redis=rds)
    assert isinstance(paper, PaperBroker) and paper.is_paper and paper.scope == f"u{owner}:a{acct}"
    # No tick in Redis: the paper fill is priced by the account's Angel quote, no order sent.
    filled = paper.place_order(OrderRequest("f-1", SBIN, Side.BUY, 1))
    assert filled.average_price and sim.server.state.orders.for_client(CLIENT) == []
    with pytest.raises(ValidationError):
        factory.broker_for(session, owner, None, paper=False, redis=rds)
    with pytest.raises(NotFound):
        factory.broker_for(session, owner + 1, acct, paper=False, redis=rds)


def test_paper_without_account_uses_the_feed(session: Session, owner: int,
                                             rds: redis.Redis) -> None:
    b = factory.broker_for(session, owner, None, paper=True, redis=rds)
    assert isinstance(b, PaperBroker) and b.scope == f"u{owner}"
    write_tick(rds, "NSE", "3045", "950", bid="949.95", ask="950.05")
    assert b.place_order(OrderRequest("f-2", SBIN, Side.BUY, 1)).average_price == \
        Decimal("950.10")


def test_test_connection_reports_success_or_angels_error(
        session: Session, owner: int, sim: Sim, rds: redis.Redis, ip_echo: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATS_IP_ECHO_URL", ip_echo)
    good = factory.test_connection(session, owner, _account(session, owner, sim), redis=rds)
    assert good.ok and CLIENT in good.message and good.egress_ip == "127.0.0.1"
    bad_acct = accounts.add_account(session, owner, label="typo", client_id=CLIENT,
                                    api_key=API_KEY, pin="0000", totp_secret=SECRET,
                                    base_url=sim.base_url).id
    bad = factory.test_connection(session, owner, bad_acct, redis=rds)
    assert not bad.ok and bad.message == "Invalid clientcode or password"


def test_jobs_in_one_worker_reuse_the_accounts_broker_until_it_is_edited(
        session: Session, owner: int, sim: Sim, rds: redis.Redis,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker keeps an account's SDK client (and its kept-alive connection) across jobs;
    an edited account, another thread, or Test connection get their own."""
    monkeypatch.setenv("ATS_IP_ECHO_URL", "")
    acct = _account(session, owner, sim)
    first = factory.broker_for(session, owner, acct, paper=False, redis=rds)
    first.place_order(OrderRequest("reuse-1", SBIN, Side.BUY, 1))
    client = first.session.client()
    again = factory.broker_for(session, owner, acct, paper=False, redis=rds)
    assert again is first and again.session.client() is client
    again.place_order(OrderRequest("reuse-2", SBIN, Side.BUY, 1))
    assert [o.ordertag for o in sim.server.state.orders.for_client(CLIENT)] == \
        ["reuse-1", "reuse-2"]

    other: list[object] = []
    thread = threading.Thread(target=lambda: other.append(
        factory.broker_for(session, owner, acct, paper=False, redis=rds)))
    thread.start()
    thread.join()
    assert other[0] is not first

    accounts.update_account(session, owner, acct, pin="9999")
    edited = factory.broker_for(session, owner, acct, paper=False, redis=rds)
    assert edited is not first and edited.session.creds.pin == "9999"
