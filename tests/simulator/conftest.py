"""Fixtures for the simulator tests (the lead owns tests/conftest.py)."""

from tests.simulator.fixtures import _sdk_cwd_in_tmp, sim, sim_factory  # noqa: F401
