"""Fixtures for the simulator tests (the lead owns tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sim_kit import Sim, make_config

from ats_app.engine.simulator.server import ServerThread


@pytest.fixture(autouse=True)
def _sdk_logs_in_tmp(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK writes logs/<date>/app.log into the working directory (with secrets on
    # failures); keep that out of the repository.
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def sim_factory() -> Iterator[Callable[..., Sim]]:
    started: list[Sim] = []

    def make(**overrides: Any) -> Sim:
        sim = Sim(ServerThread(make_config(**overrides)).start())
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.http.close()
        sim.server.stop()
        assert not sim.server.thread.is_alive()


@pytest.fixture
def sim(sim_factory: Callable[..., Sim]) -> Sim:
    return sim_factory()
