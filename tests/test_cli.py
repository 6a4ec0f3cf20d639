"""The operator CLI, run as operators run it: `python -m ats_app.cli ...` in a subprocess."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import select

from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import AuditEvent, BrokerAccount, Order

ROOT = Path(__file__).resolve().parents[1]
TOTP = "JBSWY3DPEHPK3PXP"


@pytest.fixture
def cli(database_url: str, base_env: dict[str, str]):
    env = {**os.environ, "DATABASE_URL": database_url}

    def run(*args: str, stdin: str | None = None, expect: int = 0) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "ats_app.cli", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
        )
        assert proc.returncode == expect, (proc.returncode, proc.stdout, proc.stderr)
        return proc

    def js(*args: str, stdin: str | None = None) -> dict:
        out = run(*args, "--json", stdin=stdin).stdout.strip().splitlines()
        assert len(out) == 1, out  # exactly one JSON object on stdout
        return json.loads(out[0])

    run.json = js  # type: ignore[attr-defined]
    return run


def test_full_operator_flow(cli) -> None:
    assert cli.json("db", "upgrade")["status"] == "ok"
    user = cli.json(
        "user",
        "create",
        "--username",
        "ops",
        "--password",
        "-",
        "--first",
        "Op",
        "--last",
        "Erator",
        stdin="password123\n",
    )
    assert user["id"] > 0 and user["is_admin"] is True and "password" not in json.dumps(user)
    acc = cli.json(
        "account",
        "add",
        "--user",
        "ops",
        "--label",
        "sim",
        "--client-id",
        "S1",
        "--api-key",
        "-",
        "--pin",
        "-",
        "--totp-secret",
        "-",
        "--base-url",
        "http://127.0.0.1:9100",
        stdin=f"apikey-xyz\n4321\n{TOTP}\n",
    )
    assert acc["id"] > 0 and acc["base_url"] == "http://127.0.0.1:9100"
    assert "apikey-xyz" not in json.dumps(acc) and TOTP not in json.dumps(acc)
    strat = cli.json("strategy", "create", "--user", "ops", "--name", "ORB")
    hook = cli.json(
        "webhook",
        "create",
        "--user",
        "ops",
        "--name",
        "nifty",
        "--account",
        str(acc["id"]),
        "--strategy",
        str(strat["id"]),
        "--sl",
        "1.5",
        "--target",
        "3",
        "--tsl",
        "1",
        "--paper",
    )
    assert hook["url"] == f"https://ats.example.test/webhook/{hook['token']}"
    assert len(hook["token"]) >= 22 and len(hook["secret"]) >= 16  # >= 128 bits each
    assert hook["paper"] is True and hook["stop_loss_pct"] == 1.5
    assert cli.json("bot", "start", "--user", "ops")["running"] is True
    assert cli.json("bot", "stop", "--user", "ops")["running"] is False


def test_orders_export_csv_and_json(cli) -> None:
    uid = cli.json(
        "user",
        "create",
        "--username",
        "ops",
        "--password",
        "password123",
        "--first",
        "O",
        "--last",
        "P",
    )["id"]
    with session_scope() as s:
        s.add(
            Order(
                user_id=uid,
                client_order_id="ats-1",
                exchange="NFO",
                symbol="NIFTY24DEC",
                symbol_token="35001",
                side="BUY",
                quantity=75,
                average_price_paise=12345,
                status="FILLED",
                filled_quantity=75,
            )
        )
    rows = list(
        csv.DictReader(
            io.StringIO(cli("orders", "export", "--user", "ops", "--format", "csv").stdout)
        )
    )
    assert [(r["client_order_id"], r["fill_price"], r["status"], r["mode"]) for r in rows] == [
        ("ats-1", "123.45", "FILLED", "paper")
    ]
    data = json.loads(cli("orders", "export", "--user", "ops", "--format", "json").stdout)
    assert data[0]["quantity"] == 75 and data[0]["tradingsymbol"] == "NIFTY24DEC"
    for key in (
        "id",
        "alert_id",
        "created_at",
        "account",
        "strategy",
        "link",
        "symboltoken",
        "exchange",
        "side",
        "requested_price",
        "broker_order_id",
        "reason",
    ):
        assert key in data[0] and key in rows[0]
    wrapped = cli.json("orders", "export", "--user", "ops", "--format", "json")
    assert wrapped["count"] == 1 and wrapped["orders"][0]["client_order_id"] == "ats-1"
    # Exports give the time as ISO 8601 in IST, offset named (the README says so).
    ist_iso = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+05:30")
    for created in (rows[0]["created_at"], data[0]["created_at"],
                    wrapped["orders"][0]["created_at"]):
        assert ist_iso.fullmatch(created), created


def test_errors_go_to_stderr_with_status_and_are_audited(cli) -> None:
    cli(
        "user",
        "create",
        "--username",
        "ops",
        "--password",
        "password123",
        "--first",
        "O",
        "--last",
        "P",
    )
    dup = cli(
        "user",
        "create",
        "--username",
        "ops",
        "--password",
        "password123",
        "--first",
        "O",
        "--last",
        "P",
        "--json",
        expect=1,
    )
    assert dup.stdout == "" and "already taken" in dup.stderr
    bad = cli("webhook", "create", "--user", "ops", "--name", "x", "--sl", "150", expect=1)
    assert "stop_loss_pct" in bad.stderr
    assert "no user named 'ghost'" in cli("bot", "start", "--user", "ghost", expect=1).stderr
    usage = cli("orders", "export", "--user", "ops", "--format", "xml", expect=2)
    assert "invalid choice" in usage.stderr
    empty_stdin = cli(
        "user",
        "create",
        "--username",
        "x2",
        "--password",
        "-",
        "--first",
        "a",
        "--last",
        "b",
        stdin="",
        expect=2,
    )
    assert "standard input" in empty_stdin.stderr
    with session_scope() as s:
        refused = s.exec(select(AuditEvent).where(AuditEvent.action == "cli.refused")).all()
    assert len(refused) == 3 and any("stop_loss_pct" in e.detail for e in refused)


def test_account_add_with_a_local_source_address(cli) -> None:
    cli("user", "create", "--username", "ops", "--password", "password123", "--first", "O",
        "--last", "P")
    base = ("account", "add", "--user", "ops", "--client-id", "S1", "--api-key", "k",
            "--pin", "1234", "--totp-secret", TOTP)
    acc = cli.json(*base, "--label", "a", "--source-ip", "127.0.0.5")
    assert acc["egress_source_ip"] == "127.0.0.5" and acc["egress_proxy"] is None
    both = cli(*base, "--label", "b", "--source-ip", "127.0.0.6", "--egress-proxy",
               "http://127.0.0.1:8888", expect=1)
    assert "not both" in both.stderr and both.stdout == ""
    bad = cli(*base, "--label", "c", "--source-ip", "127.0.0.300", expect=1)
    assert "local source address" in bad.stderr
    with session_scope() as s:
        assert [a.label for a in s.exec(select(BrokerAccount)).all()] == ["a"]
        refused = s.exec(select(AuditEvent).where(AuditEvent.action == "cli.refused")).all()
    assert ['"egress_source_ip"' in e.detail for e in refused] == [True, True]


def test_webhook_message_prints_the_messages_to_paste(cli) -> None:
    from ats_app.engine.execution.signals import parse_alert, parse_json_object
    from tests.unit.test_alert_messages import TV, tradingview_fill

    cli("user", "create", "--username", "ops", "--password", "password123", "--first", "O",
        "--last", "P")
    hook = cli.json("webhook", "create", "--user", "ops", "--name", "n", "--sl", "5", "--paper")
    link = ("webhook", "message", "--user", "ops", "--link", str(hook["id"]))
    out = cli.json(*link)
    assert list(out) == ["messages"]
    assert [m["name"] for m in out["messages"]] == ["Buy CALL", "Buy PUT", "Exit"]
    for m in out["messages"]:
        assert set(m) == {"name", "message"} and "{{timenow}}" in m["message"]  # unfilled
        signal = parse_alert(parse_json_object(tradingview_fill(m["message"], TV).encode()))
        assert signal.symbol == "NIFTY" and json.loads(
            tradingview_fill(m["message"], TV))["secret"] == hook["secret"]
    options = [parse_alert(parse_json_object(tradingview_fill(m["message"], TV).encode()))
               for m in out["messages"][:2]]
    assert [(s.option, s.strike.kind, s.expiry, s.lots) for s in options] == [
        ("CE", "ATM", "nearest", 1), ("PE", "ATM", "nearest", 1)]

    stock = cli.json(*link, "--kind", "stock", "--symbol", "sbin", "--send", "strategy",
                     "--lots", "10", "--pine")
    (m,) = stock["messages"]
    assert '"action": "{{strategy.order.action}}"' in m["message"] and '"SBIN"' in m["message"]
    assert stock["pine"].startswith("//@version=6\nstrategy(")
    text = cli(*link, "--strike", "OTM2").stdout  # without --json: the text to copy
    assert "# Buy PUT" in text and '"strike": "OTM2"' in text

    bad = cli(*link, "--strike", "ATMX", expect=1)
    assert "strike must be ATM" in bad.stderr and "(field: strike)" in bad.stderr
    missing = cli("webhook", "message", "--user", "ops", "--link", "999", "--json", expect=1)
    assert "webhook link 999 not found" in missing.stderr and missing.stdout == ""


def test_webhook_create_levels_off(cli) -> None:
    cli("user", "create", "--username", "ops", "--password", "password123", "--first", "O",
        "--last", "P")
    base = ("webhook", "create", "--user", "ops", "--name", "n", "--paper")
    hook = cli.json(*base, "--sl", "5", "--target", "0", "--tsl", "0")
    assert (hook["stop_loss_pct"], hook["target_pct"], hook["trailing_stop_pct"]) == (5, None,
                                                                                       None)
    refused = cli(*base, "--sl", "0", "--tsl", "off", expect=1)
    assert "every exit is off" in refused.stderr and "(field: stop_loss_pct)" in refused.stderr
    hook = cli.json(*base, "--tsl", "0", "--exits-by-signal")
    assert hook["trailing_stop_pct"] is None and hook["exits_by_signal"] is True
