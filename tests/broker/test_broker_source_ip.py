"""Static IP per account through a local source address, on loopback.

Every 127.0.0.x is an address of this machine (Linux routes all of 127/8 to `lo`), so an
account whose connections bind to 127.0.0.5 reaches the simulator from 127.0.0.5 — the
same mechanism as an EC2 secondary private IP with its own Elastic IP. The simulator
registers 127.0.0.x per account and refuses orders from any other address the way Angel
does (HTTP 400, empty body); it also records the address each order came from.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import redis
from sqlmodel import Session

from ats_app.engine.broker import factory
from ats_app.engine.broker.angel import AngelBroker
from ats_app.engine.broker.base import Contract, OrderRequest, Side
from ats_app.engine.broker.errors import EgressUnavailable, StaticIpRefused
from ats_app.engine.broker.ratelimit import RateLimiter
from ats_app.engine.broker.sdk import AngelClient
from ats_app.engine.tenants import accounts, users
from tests.broker.conftest import BrokerKit, make_creds
from tests.simulator.sim_kit import API_KEY, CLIENT, PIN, SECRET, Sim

SBIN = Contract("NSE", "SBIN-EQ", "3045", 1, Decimal("0.05"))
NOT_HERE = "192.0.2.10"  # TEST-NET-1: never an address of this machine


def _seen(sim: Sim, client: str = CLIENT) -> dict[str, str]:
    """ordertag -> the client address the simulator saw the order come from."""
    return {o.ordertag: o.source_ip for o in sim.server.state.orders.for_client(client)}


def test_orders_from_the_source_address_pass_and_from_the_default_are_refused(
        kit: BrokerKit, ip_echo: str) -> None:
    kit.sim.control("POST", "/sim/accounts", {"clientcode": CLIENT, "ip": "127.0.0.5"})
    bound = kit.broker(make_creds(kit.sim, source_ip="127.0.0.5"), ip_echo_url=ip_echo)
    assert bound.place_order(OrderRequest("src-ok-1", SBIN, Side.BUY, 1)).broker_order_id
    # The keep-alive connection is reused for the second order: still from the same address.
    assert bound.place_order(OrderRequest("src-ok-2", SBIN, Side.BUY, 1)).broker_order_id
    report = bound.test_connection()
    assert report.ok, report.message
    assert report.egress_ip == "127.0.0.5"  # what the echo saw, through the same binding

    # The same account without the setting leaves from 127.0.0.1 and is refused.
    direct = kit.broker(make_creds(kit.sim), ip_echo_url=ip_echo)
    with pytest.raises(StaticIpRefused) as caught:
        direct.place_order(OrderRequest("src-refused", SBIN, Side.BUY, 1))
    assert "(127.0.0.1)" in str(caught.value) and "registered static IP" in str(caught.value)
    assert _seen(kit.sim) == {"src-ok-1": "127.0.0.5", "src-ok-2": "127.0.0.5"}


def test_two_accounts_in_one_process_leave_from_their_own_addresses(kit: BrokerKit) -> None:
    other, other_pin = "T2002", "8765"
    kit.sim.control("POST", "/sim/accounts", {"clientcode": CLIENT, "ip": "127.0.0.6"})
    kit.sim.control("POST", "/sim/accounts", {"clientcode": other, "pin": other_pin,
                                              "totp_secret": SECRET, "ip": "127.0.0.7"})
    first = kit.broker(make_creds(kit.sim, account_id=1, source_ip="127.0.0.6"))
    second = kit.broker(make_creds(kit.sim, account_id=2, client=other, pin=other_pin,
                                   source_ip="127.0.0.7"))
    for n in range(3):  # interleaved, both sessions' pooled connections alive at once
        first.place_order(OrderRequest(f"a1-{n}", SBIN, Side.BUY, 1))
        second.place_order(OrderRequest(f"a2-{n}", SBIN, Side.BUY, 1))
    assert set(_seen(kit.sim, CLIENT).values()) == {"127.0.0.6"}
    assert set(_seen(kit.sim, other).values()) == {"127.0.0.7"}
    assert len(_seen(kit.sim, CLIENT)) == len(_seen(kit.sim, other)) == 3


def test_test_connection_reports_the_source_address_when_no_echo_answers(
        kit: BrokerKit) -> None:
    kit.sim.control("POST", "/sim/accounts", {"clientcode": CLIENT, "ip": "127.0.0.5"})
    s = kit.session(make_creds(kit.sim, source_ip="127.0.0.5"), timeout=3.0)
    # Nothing listens on port 9 of loopback: the echo fails. The declared IP is a different
    # address on purpose: the report must name where the connections really bind.
    b = AngelBroker(s, RateLimiter(kit.redis, "client:" + CLIENT),
                    ip_echo_url="http://127.0.0.1:9/", declared_ip="203.0.113.9")
    report = b.test_connection()
    assert report.ok, report.message  # the order-route probe passed the static-IP check
    assert report.egress_ip == "127.0.0.5"


def test_a_source_address_this_machine_lacks_fails_clearly_and_sends_nothing(
        kit: BrokerKit) -> None:
    b = kit.broker(make_creds(kit.sim, source_ip=NOT_HERE))
    with pytest.raises(EgressUnavailable) as caught:
        b.place_order(OrderRequest("nowhere", SBIN, Side.BUY, 1))
    assert NOT_HERE in str(caught.value) and "not an address of this server" in str(caught.value)
    report = b.test_connection()
    assert not report.ok and NOT_HERE in report.message
    assert _seen(kit.sim) == {}


def test_the_sdk_path_outside_request_leaves_from_the_source_address(ip_echo: str) -> None:
    # individual_order_details calls the SDK's make_authenticated_get_request, which uses a
    # bare requests.get (the machine's default address) in the installed SDK.
    c = AngelClient(api_key=API_KEY, root=ip_echo.rstrip("/"), source_ip="127.0.0.8")
    try:
        assert c.individual_order_details("x")["ip"] == "127.0.0.8"
    finally:
        c.close()


def test_stored_account_with_source_address_trades_from_it(
        session: Session, sim: Sim, rds: redis.Redis, ip_echo: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """From the database row through accounts.credentials and the factory to the order."""
    monkeypatch.setenv("ATS_IP_ECHO_URL", ip_echo)
    sim.control("POST", "/sim/accounts", {"clientcode": CLIENT, "ip": "127.0.0.9"})
    uid = users.create_user(session, "trader", "password123", "Trader", "X").id
    assert uid is not None
    acct = accounts.add_account(session, uid, label="main", client_id=CLIENT, api_key=API_KEY,
                                pin=PIN, totp_secret=SECRET, base_url=sim.base_url,
                                egress_source_ip="127.0.0.9").id
    report = factory.test_connection(session, uid, acct, redis=rds)
    assert report.ok and report.egress_ip == "127.0.0.9"
    broker = factory.broker_for(session, uid, acct, paper=False, redis=rds)
    try:
        broker.place_order(OrderRequest("stored-1", SBIN, Side.BUY, 1))
    finally:
        broker.close()
    assert _seen(sim) == {"stored-1": "127.0.0.9"}
