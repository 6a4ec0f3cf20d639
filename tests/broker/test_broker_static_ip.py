"""Static IP per account, through a real forward proxy (Debian's tinyproxy) on loopback.

The simulator registers 127.0.0.5 for the account; tinyproxy listens on 127.0.0.1 and
leaves from 127.0.0.5 (its `Bind` option). Orders through the proxy are accepted; the same
account sent directly (from 127.0.0.1) gets the empty-bodied 400 -> StaticIpRefused naming
the address in use. Reads (login, quotes) work from anywhere, as on Angel.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from ats_app.engine.broker.base import Contract, OrderRequest, Side
from ats_app.engine.broker.errors import StaticIpRefused
from ats_app.engine.services.embedded_redis import free_port
from tests.broker.conftest import BrokerKit, make_creds
from tests.conftest import require_or_skip
from tests.simulator.sim_kit import CLIENT

REGISTERED_IP = "127.0.0.5"
TINYPROXY = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
SBIN = Contract("NSE", "SBIN-EQ", "3045", 1, Decimal("0.05"))


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "tinyproxy exited at start-up"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("tinyproxy did not start listening")


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[str]:
    require_or_skip(Path(TINYPROXY).exists(), "tinyproxy (apt install tinyproxy)")
    port = free_port()
    conf = tmp_path / "tinyproxy.conf"
    conf.write_text(
        f"Port {port}\nListen 127.0.0.1\nBind {REGISTERED_IP}\nTimeout 10\nMaxClients 20\n"
        f"Allow 127.0.0.1\nLogLevel Error\nLogFile \"{tmp_path / 'tinyproxy.log'}\"\n"
        "DisableViaHeader Yes\n")
    proc = subprocess.Popen([TINYPROXY, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_listening(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(5)


def test_orders_via_the_registered_ip_pass_and_direct_ones_are_refused(
        kit: BrokerKit, tinyproxy: str, ip_echo: str) -> None:
    kit.sim.control("POST", "/sim/accounts", {"clientcode": CLIENT, "ip": REGISTERED_IP})
    via_proxy = kit.broker(make_creds(kit.sim, account_id=1, proxy=tinyproxy),
                           ip_echo_url=ip_echo)
    placed = via_proxy.place_order(OrderRequest("ip-ok", SBIN, Side.BUY, 1))
    assert placed.broker_order_id
    report = via_proxy.test_connection()
    assert report.ok, report.message
    assert report.egress_ip == REGISTERED_IP

    # The same account without its proxy (e.g. the setting was lost): leaves from 127.0.0.1.
    direct = kit.broker(make_creds(kit.sim, account_id=1), ip_echo_url=ip_echo)
    assert direct.quote(SBIN).ltp > 0  # market data needs no static IP
    with pytest.raises(StaticIpRefused) as caught:
        direct.place_order(OrderRequest("ip-refused", SBIN, Side.BUY, 1))
    assert "127.0.0.1" in str(caught.value) and "registered static IP" in str(caught.value)
    bad = direct.test_connection()
    assert not bad.ok and bad.egress_ip == "127.0.0.1"
    assert "not the account's registered static IP" in bad.message
    tags = [o.ordertag for o in kit.sim.server.state.orders.for_client(CLIENT)]
    assert tags == ["ip-ok"]
