"""FRONTEND_PORT / BACKEND_PORT: what the README documents is what `reflex run` serves on.

Reflex reads only REFLEX_-prefixed variables; rxconfig.py turns ours into its ports. The
whole stack started the same way (FRONTEND_PORT too) is in tests/test_browser_layout.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ats_app.engine.core.config import (
    ConfigError,
    backend_port,
    load_settings,
    reflex_ports,
)
from tests.reflex_proc import ROOT, ReflexProcess


def test_reflex_ports_from_the_documented_variables() -> None:
    # Unset: the backend's default is pinned (webhook URLs are built on it), the dashboard's
    # left to Reflex (which moves a busy 3000 to the next free port).
    assert reflex_ports({}) == {"backend_port": 8000}
    assert reflex_ports({"FRONTEND_PORT": "3100", "BACKEND_PORT": " 8100 "}) == {
        "frontend_port": 3100, "backend_port": 8100}
    assert reflex_ports({"FRONTEND_PORT": "", "BACKEND_PORT": ""}) == {"backend_port": 8000}


@pytest.mark.parametrize("name", ["FRONTEND_PORT", "BACKEND_PORT"])
@pytest.mark.parametrize("value", ["0", "65536", "80a", "-1"])
def test_a_bad_port_is_named(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        reflex_ports({name: value})


def test_backend_port_prefers_what_reflex_bound() -> None:
    assert backend_port({}) == 8000
    assert backend_port({"BACKEND_PORT": "8100"}) == 8100
    # `reflex run --backend-port 8200` (or its own pick) is recorded as REFLEX_BACKEND_PORT.
    assert backend_port({"BACKEND_PORT": "8100", "REFLEX_BACKEND_PORT": "8200"}) == 8200


def test_public_base_url_default_follows_backend_port(tmp_path: Path) -> None:
    env = {"ATS_DATA_DIR": str(tmp_path)}
    assert load_settings(env, dotenv=False).public_base_url == "http://localhost:8000"
    moved = load_settings({**env, "BACKEND_PORT": "8100"}, dotenv=False)
    assert moved.public_base_url == "http://localhost:8100"
    given = load_settings({**env, "BACKEND_PORT": "8100",
                           "PUBLIC_BASE_URL": "https://ats.example.in/"}, dotenv=False)
    assert given.public_base_url == "https://ats.example.in"  # an explicit URL is kept


def _rxconfig(env: dict[str, str]) -> dict:
    code = ("import json, rxconfig; c = rxconfig.config; print(json.dumps("
            "{'frontend': c.frontend_port, 'backend': c.backend_port, 'api': c.api_url}))")
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("REFLEX_", "FRONTEND_PORT", "BACKEND_PORT", "API_URL"))}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_rxconfig_gives_reflex_the_ports_and_the_dashboard_the_backend_url() -> None:
    cfg = _rxconfig({"FRONTEND_PORT": "3100", "BACKEND_PORT": "8100"})
    # api_url is where the dashboard's browser code opens its websocket.
    assert cfg == {"frontend": 3100, "backend": 8100, "api": "http://localhost:8100"}
    # reflex's own flags (--backend-port, recorded as REFLEX_BACKEND_PORT) still win.
    flagged = _rxconfig({"BACKEND_PORT": "8100", "REFLEX_BACKEND_PORT": "8300"})
    assert flagged["backend"] == 8300 and flagged["api"] == "http://localhost:8300"


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[ReflexProcess]:
    proc = ReflexProcess(tmp_path / "data", backend_only=True, ports_by_env=True)
    assert proc.backend_port != 8000
    proc.start(timeout=180)  # waits for /ping on BACKEND_PORT
    yield proc
    proc.stop()


def test_backend_serves_on_backend_port_and_webhook_urls_name_it(
        backend: ReflexProcess) -> None:
    assert "--backend-port" not in " ".join(backend.proc.args)  # type: ignore[union-attr]
    assert httpx.get(f"{backend.backend}/ping", timeout=5).text.strip('"') == "pong"
    assert httpx.get(f"{backend.backend}/healthz", timeout=10).json()["database"] is True

    # A link made by the CLI in the operator's environment: its URL is on BACKEND_PORT, and
    # an alert posted to exactly that URL reaches this backend.
    def cli(*args: str) -> dict:
        out = subprocess.run([sys.executable, "-m", "ats_app.cli", *args, "--json"],
                             env=backend.env, cwd=ROOT, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    cli("user", "create", "--username", "dev", "--password", "correct-horse-1",
        "--first", "D", "--last", "V")
    link = cli("webhook", "create", "--user", "dev", "--name", "ports", "--sl", "20",
               "--paper")
    assert link["url"] == f"http://localhost:{backend.backend_port}/webhook/{link['token']}"
    body = {"secret": link["secret"], "action": "buy", "symbol": "NIFTY", "option": "CE",
            "strike": "ATM", "lots": 1, "id": "ports-1"}
    resp = httpx.post(link["url"], content=json.dumps(body), timeout=10)
    assert resp.status_code == 200 and resp.json()["reason"] == "bot_stopped", resp.text
