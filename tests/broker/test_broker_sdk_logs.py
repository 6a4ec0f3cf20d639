"""No secret reaches a file or a log: failed login, rejected order, expired token."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import logzero
import pytest
from SmartApi.smartConnect import SmartConnect

from ats_app.engine.broker.base import Contract, OrderRequest, Side
from ats_app.engine.broker.errors import LoginFailed, OrderRejected
from ats_app.engine.broker.sdk import AngelClient
from tests.broker.conftest import BrokerKit, make_creds
from tests.simulator.sim_kit import API_KEY, CLIENT


def test_client_sets_every_attribute_the_sdk_sets(tmp_path: Path) -> None:
    lg = logging.getLogger(logzero.LOGZERO_DEFAULT_LOGGER)
    before = list(lg.handlers)
    sdk = SmartConnect(api_key="k", root="http://127.0.0.1:1")  # writes logs/ into tmp_path
    for handler in set(lg.handlers) - set(before):  # the file handler it just attached
        lg.removeHandler(handler)
        handler.close()
    ours = AngelClient(api_key="k", root="http://127.0.0.1:1")
    missing = set(vars(sdk)) - set(vars(ours))
    assert not missing, f"SDK upgrade added attributes AngelClient does not set: {missing}"
    assert ours._rootUrl == ours.root == "http://127.0.0.1:1"


def test_failed_login_and_rejected_order_leak_no_secret(
        kit: BrokerKit, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    bad_pin = kit.session(make_creds(kit.sim, pin="9876"))
    with pytest.raises(LoginFailed):
        bad_pin.tokens()
    b = kit.broker()
    tokens = b.session.tokens()
    bogus = Contract("NSE", "NOPE-EQ", "999999999", 1, Decimal("0.05"))
    with pytest.raises(OrderRejected):
        b.place_order(OrderRequest("leak-1", bogus, Side.BUY, 1))
    kit.sim.control("POST", "/sim/expire", {"clientcode": CLIENT})
    b.positions()  # AG8001, renewal, retry
    secrets = {"api key": API_KEY, "pin": "9876", "good pin": b.session.creds.pin,
               "jwt": tokens.jwt, "refresh": tokens.refresh,
               "renewed jwt": b.session.tokens().jwt, "totp secret": b.session.creds.totp_secret}
    assert not (tmp_path / "logs").exists()  # the SDK's CWD log folder was never created
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    out, err = capfd.readouterr()
    for name, secret in secrets.items():
        for path, data in files.items():
            assert secret.encode() not in data, f"{name} written to {path}"
        assert secret not in caplog.text, f"{name} in our logs"
        assert secret not in out + err, f"{name} on stdout/stderr"
    assert "logged in to Angel account" in caplog.text  # our logs were captured at all

