"""`instruments resolve` through an argparse harness shaped like ats_app.cli's."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from ats_app.cli import main
from ats_app.cli.instruments import add_commands as add_instruments_commands
from ats_app.engine.core.errors import ValidationError

ROWS = [
    {
        "token": "99926000",
        "symbol": "Nifty 50",
        "name": "NIFTY",
        "expiry": "",
        "strike": "0.000000",
        "lotsize": "1",
        "instrumenttype": "AMXIDX",
        "exch_seg": "NSE",
        "tick_size": "-1.000000",
    },
    {
        "token": "2885",
        "symbol": "RELIANCE-EQ",
        "name": "RELIANCE",
        "expiry": "",
        "strike": "-1.000000",
        "lotsize": "1",
        "instrumenttype": "",
        "exch_seg": "NSE",
        "tick_size": "10.000000",
    },
]
for _n, (_exp, _sym) in enumerate([("24NOV2026", "24NOV26"), ("01dec2026", "01DEC26")]):
    for _k in (23950, 24000, 24050):
        for _t in ("CE", "PE"):
            ROWS.append(
                {
                    "token": f"4{_n}{_k}{_t}",
                    "symbol": f"NIFTY{_sym}{_k}{_t}",
                    "name": "NIFTY",
                    "expiry": _exp,
                    "strike": f"{_k * 100:.6f}",
                    "lotsize": "65",
                    "instrumenttype": "OPTIDX",
                    "exch_seg": "NFO",
                    "tick_size": "5.000000",
                }
            )


@pytest.fixture
def master(tmp_path: Path) -> str:
    path = tmp_path / "OpenAPIScripMaster.json"
    path.write_text(json.dumps(ROWS))
    return str(path)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, Any, str]:
    code = main(["instruments", "resolve", *argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 and "--json" in argv else out), err


def resolve(master: str, *extra: str) -> list[str]:
    return [
        "--master",
        master,
        "--underlying",
        "NIFTY",
        "--option",
        "CE",
        "--strike",
        "ATM",
        "--spot",
        "24012.5",
        "--on",
        "2026-11-24",
        "--json",
        *extra,
    ]


def test_documented_command_prints_one_json_object(
    master: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["instruments", "resolve", *resolve(master, "--expiry", "nearest")])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert out.count("\n") == 1
    assert json.loads(out) == {
        "tradingsymbol": "NIFTY24NOV2624000CE",
        "symboltoken": "4024000CE",
        "exchange": "NFO",
        "expiry": "2026-11-24",
        "strike": 24000,
        "lotsize": 65,
        "tick_size": 0.05,
    }


@pytest.mark.parametrize(
    ("extra", "symbol"),
    [
        (["--strike", "OTM1"], "NIFTY24NOV2624050CE"),
        (["--strike", "ITM1"], "NIFTY24NOV2623950CE"),
        (["--option", "PE", "--strike", "ITM1"], "NIFTY24NOV2624050PE"),
        (["--option", "PE", "--strike", "OTM1"], "NIFTY24NOV2623950PE"),
        (["--expiry", "next"], "NIFTY01DEC2624000CE"),
        (["--expiry", "2026-12-01", "--strike", "24050"], "NIFTY01DEC2624050CE"),
        (["--on", "2026-11-24T15:45"], "NIFTY01DEC2624000CE"),  # after the close: rolled
        (["--on", "2026-11-24T10:00"], "NIFTY24NOV2624000CE"),
        (["--roll-expiry-day"], "NIFTY01DEC2624000CE"),
    ],
)
def test_choices(
    master: str, capsys: pytest.CaptureFixture[str], extra: list[str], symbol: str
) -> None:
    code, result, _ = run(resolve(master, *extra), capsys)
    assert code == 0 and result["tradingsymbol"] == symbol


def test_explicit_tradingsymbol(master: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, result, _ = run(
        ["--master", master, "--tradingsymbol", "reliance-eq", "--exchange", "NSE", "--json"],
        capsys,
    )
    assert code == 0
    assert result == {
        "tradingsymbol": "RELIANCE-EQ",
        "symboltoken": "2885",
        "exchange": "NSE",
        "expiry": None,
        "strike": None,
        "lotsize": 1,
        "tick_size": 0.1,
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--on", "2026-12-02"],
            "error: no NIFTY CE expiry on or after 2026-12-02 (field: expiry)",
        ),
        (["--strike", "24010"], "no NIFTY 2026-11-24 CE strike 24010"),
        (["--spot", "60000"], "is it this underlying's price?"),
        (["--underlying", "MIDCPNIFTY"], "no options on 'MIDCPNIFTY'"),
        (["--on", "24/11/2026"], "--on must be a date"),
        (["--tradingsymbol", "NIFTY24NOV2624000CE"], "give either --tradingsymbol"),
    ],
)
def test_errors_go_to_stderr_with_exit_1(
    master: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(resolve(master, *argv), capsys)
    assert code == 1 and out == "" and message in err and err.startswith("error: ")


def test_symbol_mode_needs_exchange(master: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["--master", master, "--tradingsymbol", "RELIANCE-EQ"], capsys)
    assert code == 1 and "needs --exchange" in err


def test_missing_option_flags(master: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["--master", master, "--underlying", "NIFTY"], capsys)
    assert code == 1 and "missing --option, --strike" in err


def test_unreadable_master_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "master.json"
    bad.write_text("<html>")
    code, _, err = run(resolve(str(bad)), capsys)
    assert code == 1 and "not valid JSON" in err


def test_plugs_into_a_cli_shaped_parser(master: str) -> None:
    """The exact shape ats_app.cli.build_parser has: group subparsers + a common parent."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true")
    parser = argparse.ArgumentParser(parents=[common])
    sub = parser.add_subparsers(dest="group", required=True)
    add_instruments_commands(sub, common)
    args = parser.parse_args(["instruments", "resolve", *resolve(master, "--strike", "OTM1")])
    assert args.json is True and args.group == "instruments" and args.cmd == "resolve"
    assert args.fn(args)["tradingsymbol"] == "NIFTY24NOV2624050CE"
    bad = parser.parse_args(["instruments", "resolve", *resolve(master, "--option", "XX")])
    with pytest.raises(ValidationError, match="CE or PE"):
        bad.fn(bad)
