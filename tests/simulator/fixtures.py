"""Simulator fixtures shared by the simulator and broker test folders (their conftests
import these names, which registers them there)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ats_app.simulator.server import ServerThread
from tests.simulator.sim_kit import Sim, make_config


@pytest.fixture(autouse=True)
def _sdk_cwd_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK writes logs/<date>/app.log (with secrets on failures) into the working
    # directory: keep it in the test's tmp_path, where the secret-leak test can scan it.
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
