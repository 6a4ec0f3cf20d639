"""The simulator's own order book, read in-process (no getOrderBook call is counted)."""

from __future__ import annotations

import time

from ats_app.simulator.server import ServerThread


def book(sim: ServerThread) -> list[dict]:
    return [o.book_row() for o in sim.state.orders.orders.values()]


def market_filled_at_sim(sim: ServerThread, timeout: float = 5.0) -> None:
    """Wait for the simulator's engine to admit every order and fill every market order it
    holds (it ticks every 20-50 ms): a follower round reading the book sooner finds them
    still open, and whether it does depends only on how warm the test process is."""
    deadline = time.monotonic() + timeout
    while any(o["status"] == "open pending"  # accepted, admitted on the engine's next pass
              or (o["status"] == "open" and o["ordertype"] == "MARKET") for o in book(sim)):
        assert time.monotonic() < deadline, "the simulator never filled its market orders"
        time.sleep(0.01)
