"""Fixtures for the monitor tests: the simulator, a paper world, child processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ats_app.engine.core.config import reset_settings_cache
from ats_app.simulator.config import SimConfig, demo_account
from ats_app.simulator.server import ServerThread
from tests.monitor.kit import Procs


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerThread]:
    monkeypatch.chdir(tmp_path)  # anything SDK-made stays in tmp
    server = ServerThread(SimConfig(accounts=[demo_account()], engine_interval_ms=20)).start()
    for name, value in {
        "SIMULATOR_PORT": str(server.port),
        "ATS_SIMULATOR": "true",
        "ATS_IP_ECHO_URL": "",
        "MARKET_HOURS": "always",  # the risk gate refuses entries outside NSE hours
        # A frozen mid-session clock (worker processes inherit it): on the wall clock, a worker
        # started between 15:15 and 15:30 IST runs the day's missed square-off at once and
        # exits the positions a test has just opened.
        "ATS_FAKE_NOW": "2026-12-02T10:00:00+05:30",
        "ATS_FEED_STALE_SECONDS": "1.5",
        "ATS_FEED_BACKOFF_MAX": "1",
        "ATS_MONITOR_REST_INTERVAL": "0.2",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SCRIP_MASTER_URL", raising=False)
    reset_settings_cache()
    yield server
    server.stop()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    yield p
    p.stop_all()


@pytest.fixture
def rds(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)
