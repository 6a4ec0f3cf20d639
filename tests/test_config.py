"""Configuration: zero-config development, strict production, SMARTAPI_* bootstrap."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from ats_app.engine.core.config import ConfigError, load_settings
from ats_app.engine.store.db import session_scope
from ats_app.engine.tenants import accounts
from ats_app.engine.tenants.bootstrap import account_from_env
from ats_app.engine.tenants.users import create_user


def test_dev_defaults_need_no_configuration(tmp_path: Path) -> None:
    cfg = load_settings({"ATS_DATA_DIR": str(tmp_path)}, dotenv=False)
    assert cfg.trading_mode == "paper" and cfg.market_hours == "nse"
    assert cfg.database_url == f"sqlite:///{tmp_path / 'ats.db'}"
    assert cfg.redis_url is None and cfg.spawn_services and cfg.registration_open
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # The generated key is reused, not regenerated, on the next start.
    assert load_settings({"ATS_DATA_DIR": str(tmp_path)}, dotenv=False).secret_key == cfg.secret_key


@pytest.mark.parametrize(
    "missing", ["ATS_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "PUBLIC_BASE_URL"]
)
def test_prod_refuses_to_start_without_secrets(tmp_path: Path, missing: str) -> None:
    env = {
        "ATS_ENV": "prod",
        "ATS_DATA_DIR": str(tmp_path),
        "ATS_SECRET_KEY": "k",
        "DATABASE_URL": "postgresql://x/y",
        "REDIS_URL": "redis://x",
        "PUBLIC_BASE_URL": "https://x",
    }
    del env[missing]
    with pytest.raises(ConfigError, match=missing):
        load_settings(env, dotenv=False)
    assert not (tmp_path / "secret.key").exists()  # never a generated default in prod


def test_prod_closes_registration_and_service_spawning(tmp_path: Path) -> None:
    cfg = load_settings(
        {
            "ATS_ENV": "prod",
            "ATS_SECRET_KEY": "k",
            "DATABASE_URL": "sqlite://",
            "REDIS_URL": "redis://x",
            "PUBLIC_BASE_URL": "https://x",
        },
        dotenv=False,
    )
    assert not cfg.registration_open and not cfg.spawn_services


@pytest.mark.parametrize(
    "env,match",
    [
        ({"TRADING_MODE": "yolo"}, "TRADING_MODE"),
        ({"MARKET_HOURS": "always", "TRADING_MODE": "live"}, "MARKET_HOURS=always"),
        ({"ALLOW_REGISTRATION": "maybe"}, "ALLOW_REGISTRATION"),
        ({"SESSION_HOURS": "twelve"}, "SESSION_HOURS"),
        ({"ATS_WORKER_NICE": "25"}, "ATS_WORKER_NICE"),
    ],
)
def test_invalid_values_are_named(tmp_path: Path, env: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_settings({"ATS_DATA_DIR": str(tmp_path), **env}, dotenv=False)


def test_smartapi_env_creates_then_updates_admin_account(database_url: str, tmp_path: Path) -> None:
    env = {
        "ATS_DATA_DIR": str(tmp_path),
        "ATS_SECRET_KEY": "unused",
        "SMARTAPI_CLIENT_ID": "a12345",
        "SMARTAPI_API_KEY": "key-1",
        "SMARTAPI_PASSWORD": "1234",
        "SMARTAPI_TOTP": "JBSWY3DPEHPK3PXP",
    }
    cfg = load_settings(env, dotenv=False)
    with session_scope() as s:
        assert account_from_env(s, cfg) is None  # no administrator yet
        admin = create_user(s, "admin", "password123", "A", "D").id
        create_user(s, "other", "password123", "O", "T")
        first = account_from_env(s, cfg)
    cfg2 = load_settings({**env, "SMARTAPI_API_KEY": "key-2"}, dotenv=False)
    with session_scope() as s:
        assert account_from_env(s, cfg2) == first  # updated, not duplicated
        assert [a.client_id for a in accounts.list_accounts(s, admin)] == ["A12345"]
        assert accounts.credentials(s, admin, first).api_key == "key-2"


def _niceness(pid: int) -> int:
    # /proc/<pid>/stat: field 19 is the nice value (after the parenthesised command name).
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_worker_steps_back_to_its_configured_niceness(
    redis_url: str, database_url: str, tmp_path: Path
) -> None:
    """Workers yield the CPU to the webhook and the monitor (a real worker process)."""
    env = {**os.environ, "ATS_WORKER_NICE": "7", "REDIS_URL": redis_url,
           "DATABASE_URL": database_url, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "ats_app.cli", "worker"], env=env,
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        conn = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 60
        while not conn.smembers("rq:workers") and time.monotonic() < deadline:
            assert proc.poll() is None, "worker exited"
            time.sleep(0.1)
        assert conn.smembers("rq:workers"), "worker never registered"
        assert _niceness(proc.pid) == max(7, _niceness(os.getpid()))
    finally:
        proc.terminate()
        proc.wait(10)
