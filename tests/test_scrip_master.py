"""Scrip master download and cache against real local HTTP servers (http.server, simulator)."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ats_app.cli import main as instruments_cli
from ats_app.engine.core.config import reset_settings_cache
from ats_app.engine.market.instruments import IST
from ats_app.engine.market.resolve import resolve_option
from ats_app.engine.market.scrip_master import (
    DEFAULT_SCRIP_MASTER_URL,
    SCRIP_MASTER_PATH,
    CachePolicy,
    ScripMasterUnavailable,
    cache_file,
    ensure_master,
    last_boundary,
    load_index,
    load_rows,
    master_url,
)
from ats_app.simulator.config import SimConfig
from ats_app.simulator.server import ServerThread

MORNING = datetime(2026, 11, 24, 9, 0, tzinfo=IST)


def rows(count: int, tag: str = "A") -> list[dict[str, str]]:
    """`count` real-format NIFTY option rows; `tag` marks which publication they came from."""
    out = []
    for i in range(count):
        strike = 22000 + 50 * (i // 2)
        kind = "CE" if i % 2 == 0 else "PE"
        out.append(
            {
                "token": f"{tag}{40000 + i}",
                "symbol": f"NIFTY24NOV26{strike}{kind}",
                "name": "NIFTY",
                "expiry": "24NOV2026",
                "strike": f"{strike * 100:.6f}",
                "lotsize": "65",
                "instrumenttype": "OPTIDX",
                "exch_seg": "NFO",
                "tick_size": "5.000000",
            }
        )
    return out


class Served:
    """What the local server answers, and how often it was asked."""

    def __init__(self) -> None:
        self.status = 200
        self.body = json.dumps(rows(200)).encode()
        self.hits = 0


@pytest.fixture
def server() -> Iterator[tuple[str, Served]]:
    served = Served()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.hits += 1
            self.send_response(served.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(served.body)))
            self.end_headers()
            self.wfile.write(served.body)

        def log_message(self, *_: object) -> None:  # keep test output quiet
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}{SCRIP_MASTER_PATH}", served
    httpd.shutdown()
    httpd.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{SCRIP_MASTER_PATH}"


def tokens(path: Path) -> set[str]:
    return {r["token"][0] for r in load_rows(path)}


# --------------------------------------------------------------------------- URLs


def test_master_url_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCRIP_MASTER_URL", raising=False)
    assert master_url() == DEFAULT_SCRIP_MASTER_URL
    assert DEFAULT_SCRIP_MASTER_URL == (
        "https://margincalculator.angelbroking.com/OpenAPI_File/files/OpenAPIScripMaster.json"
    )
    monkeypatch.setenv("SCRIP_MASTER_URL", "http://mirror.local/master.json")
    assert master_url() == "http://mirror.local/master.json"
    # An account's SmartAPI-compatible server wins over the global setting.
    assert master_url("http://127.0.0.1:9100/") == (
        "http://127.0.0.1:9100/OpenAPI_File/files/OpenAPIScripMaster.json"
    )


def test_each_url_has_its_own_cache_file(tmp_path: Path) -> None:
    a = cache_file("http://127.0.0.1:9100" + SCRIP_MASTER_PATH, tmp_path)
    b = cache_file("http://127.0.0.1:9200" + SCRIP_MASTER_PATH, tmp_path)
    assert a != b and a.parent == b.parent == tmp_path / "scrip_master"


def test_refresh_boundary_is_08_00_ist() -> None:
    at = time(8, 0)
    assert last_boundary(datetime(2026, 11, 24, 9, 0, tzinfo=IST), at) == datetime(
        2026, 11, 24, 8, 0, tzinfo=IST
    )
    assert last_boundary(datetime(2026, 11, 24, 7, 59, tzinfo=IST), at) == datetime(
        2026, 11, 23, 8, 0, tzinfo=IST
    )


# --------------------------------------------------------------------------- caching


def test_downloads_once_then_serves_the_cache(tmp_path: Path, server: tuple[str, Served]) -> None:
    url, served = server
    path = ensure_master(url=url, data_dir=tmp_path, now=MORNING)
    assert served.hits == 1 and len(load_rows(path)) == 200
    meta = json.loads(path.with_suffix(".meta.json").read_text())
    assert meta["url"] == url and meta["rows"] == 200
    later = MORNING + timedelta(hours=6)
    assert ensure_master(url=url, data_dir=tmp_path, now=later) == path
    assert served.hits == 1


@pytest.mark.parametrize(
    ("fetched", "now", "refreshed"),
    [
        (datetime(2026, 11, 24, 9, 0), datetime(2026, 11, 25, 8, 30), True),  # next morning
        (datetime(2026, 11, 24, 7, 0), datetime(2026, 11, 24, 8, 30), True),  # before publication
        (datetime(2026, 11, 24, 9, 0), datetime(2026, 11, 25, 7, 30), False),  # not yet republished
    ],
)
def test_stale_copy_is_refreshed(
    tmp_path: Path, server: tuple[str, Served], fetched: datetime, now: datetime, refreshed: bool
) -> None:
    url, served = server
    path = ensure_master(url=url, data_dir=tmp_path, now=fetched)
    served.body = json.dumps(rows(210, tag="B")).encode()
    ensure_master(url=url, data_dir=tmp_path, now=now)
    assert served.hits == (2 if refreshed else 1)
    assert tokens(path) == ({"B"} if refreshed else {"A"})


def test_failed_refresh_falls_back_to_a_recent_copy(
    tmp_path: Path, server: tuple[str, Served], caplog: pytest.LogCaptureFixture
) -> None:
    url, served = server
    path = ensure_master(url=url, data_dir=tmp_path, now=MORNING)
    served.status = 503
    with caplog.at_level(logging.WARNING):
        again = ensure_master(url=url, data_dir=tmp_path, now=MORNING + timedelta(days=1))
    assert again == path and tokens(path) == {"A"} and served.hits == 2
    assert "HTTP 503" in caplog.text


def test_failed_refresh_with_too_old_copy_is_an_error(
    tmp_path: Path, server: tuple[str, Served]
) -> None:
    url, served = server
    ensure_master(url=url, data_dir=tmp_path, now=MORNING)
    served.status = 500
    with pytest.raises(ScripMasterUnavailable) as exc:
        ensure_master(url=url, data_dir=tmp_path, now=MORNING + timedelta(days=3))
    assert "HTTP 500" in str(exc.value) and "too old" in str(exc.value)


def test_unreachable_server_without_cache(tmp_path: Path) -> None:
    url = closed_port_url()
    with pytest.raises(ScripMasterUnavailable) as exc:
        ensure_master(url=url, data_dir=tmp_path, now=MORNING, policy=CachePolicy(timeout=2))
    message = str(exc.value)
    assert url in message and "ConnectError" in message and "no cached copy" in message
    assert not list((tmp_path / "scrip_master").glob("*"))  # no half-written leftovers


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>maintenance</html>" * 500, "not valid JSON"),
        (b"[]" + b" " * 20_000, "not a JSON array of rows"),
        (b"small", "only 5 bytes"),
        (json.dumps([{"token": "1", "symbol": "X"}] * 2000).encode(), "rows lack"),
        (json.dumps(rows(40)).encode() + b" " * 10_000, "only 40 rows"),
    ],
)
def test_sanity_checks_reject_bad_downloads(
    tmp_path: Path, server: tuple[str, Served], body: bytes, reason: str
) -> None:
    url, served = server
    served.body = body
    with pytest.raises(ScripMasterUnavailable, match=reason):
        ensure_master(url=url, data_dir=tmp_path, now=MORNING)
    assert not cache_file(url, tmp_path).exists()


def test_shrunken_master_is_rejected_and_the_good_copy_kept(
    tmp_path: Path, server: tuple[str, Served]
) -> None:
    url, served = server
    path = ensure_master(url=url, data_dir=tmp_path, now=MORNING)
    served.body = json.dumps(rows(90, tag="B")).encode()  # under half of 200: truncated
    assert ensure_master(url=url, data_dir=tmp_path, now=MORNING + timedelta(days=1)) == path
    assert tokens(path) == {"A"}


def test_oversized_download_is_refused(tmp_path: Path, server: tuple[str, Served]) -> None:
    url, _ = server
    with pytest.raises(ScripMasterUnavailable, match="larger than"):
        ensure_master(url=url, data_dir=tmp_path, now=MORNING, policy=CachePolicy(max_bytes=20_000))


def test_data_dir_defaults_to_settings(
    tmp_path: Path, server: tuple[str, Served], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = server
    monkeypatch.setenv("ATS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SCRIP_MASTER_URL", url)
    reset_settings_cache()
    try:
        path = ensure_master(now=MORNING)
    finally:
        reset_settings_cache()
    assert path.parent == tmp_path / "scrip_master" and path.exists()


# --------------------------------------------------------------------------- simulator


@pytest.fixture(scope="module")
def simulator() -> Iterator[ServerThread]:
    sim = ServerThread(SimConfig(), start=date(2026, 11, 20)).start()
    yield sim
    sim.stop()


def test_master_from_the_simulator_resolves(tmp_path: Path, simulator: ServerThread) -> None:
    index = load_index(base_url=simulator.base_url, data_dir=tmp_path, now=MORNING)
    spot = index.spot_instrument("NIFTY")
    assert spot is not None and spot.token == "99926000"
    inst = resolve_option(
        index,
        underlying="NIFTY",
        option_type="PE",
        strike="ITM1",
        spot="26012.5",
        on=date(2026, 11, 24),
    )
    assert (inst.tradingsymbol, inst.lotsize, inst.exchange) == ("NIFTY24NOV2626050PE", 65, "NFO")
    assert simulator.state.master.get(inst.token).symbol == inst.tradingsymbol
    assert str(inst.tick_size) == "0.05"


def test_cli_downloads_from_the_account_server(
    tmp_path: Path,
    simulator: ServerThread,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ATS_DATA_DIR", str(tmp_path))
    reset_settings_cache()
    try:
        code = instruments_cli(
            [
                "instruments",
                "resolve",
                "--base-url",
                simulator.base_url,
                "--underlying",
                "BANKNIFTY",
                "--option",
                "CE",
                "--strike",
                "ATM",
                "--expiry",
                "next",
                "--spot",
                "59049",
                "--on",
                "2026-11-20",
                "--json",
            ]
        )
    finally:
        reset_settings_cache()
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out) | {"symboltoken": "-"} == {
        "tradingsymbol": "BANKNIFTY29DEC2659000CE",
        "symboltoken": "-",
        "exchange": "NFO",
        "expiry": "2026-12-29",
        "strike": 59000,
        "lotsize": 30,
        "tick_size": 0.05,
    }
    assert list((tmp_path / "scrip_master").glob("127.0.0.1-*.json"))
