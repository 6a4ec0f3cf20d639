"""The simulator at a broker's pace: latency profiles for answers and fills."""

from __future__ import annotations

import time
from datetime import date

import pytest
from sim_kit import Sim, order

from ats_app.simulator.accounts import Account
from ats_app.simulator.clock import Clock
from ats_app.simulator.latency import Pacer, profile
from ats_app.simulator.market import Market
from ats_app.simulator.orders import OrderBook
from ats_app.simulator.positions import Positions
from ats_app.simulator.scripmaster import ScripMaster, build_instruments
from ats_app.simulator.server import parse_args


def test_instant_answers_and_fills_at_once() -> None:
    pacer = Pacer("instant")
    assert {pacer.answer_delay(r) for r in ("placeOrder", "getOrderBook", "x")} == {0.0}
    assert pacer.fill_delay() == 0.0


@pytest.mark.parametrize(("route", "lo", "hi"), [
    ("placeOrder", 0.100, 0.300), ("modifyOrder", 0.100, 0.300), ("cancelOrder", 0.100, 0.300),
    ("getOrderBook", 0.120, 0.180), ("getTradeBook", 0.120, 0.180),
    ("loginByPassword", 0.150, 0.300), ("getLtpData", 0.050, 0.150),
    ("anything-else", 0.050, 0.150),
])
def test_angel_answers_inside_its_ranges(route: str, lo: float, hi: float) -> None:
    pacer = Pacer("angel", seed=3)
    draws = [pacer.answer_delay(route) for _ in range(300)]
    assert lo <= min(draws) and max(draws) <= hi
    assert max(draws) - min(draws) > (hi - lo) / 2  # spread over the range, not one value


def test_angel_fills_a_few_hundred_ms_after_acceptance_and_repeats_by_seed() -> None:
    a, b = Pacer("angel", seed=11), Pacer("angel", seed=11)
    fills = [a.fill_delay() for _ in range(200)]
    assert min(fills) >= 0.2 and max(fills) <= 0.5
    assert fills == [b.fill_delay() for _ in range(200)]


def test_an_unknown_profile_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"unknown latency profile 'slow'.*instant, angel"):
        profile("slow")


def test_the_cli_flag_selects_the_profile() -> None:
    assert parse_args(["--latency", "angel"])[0].latency == "angel"
    assert parse_args([])[0].latency == "instant"
    with pytest.raises(SystemExit):
        parse_args(["--latency", "slow"])


def test_an_accepted_order_fills_only_after_the_fill_delay() -> None:
    master = ScripMaster(build_instruments(date(2026, 11, 25), 2))
    market = Market(master, Clock(), seed=1, step_s=0.05)
    accounts = {"C": Account("C", "1", "JBSWY3DPEHPK3PXP", None, 1_000_000.0, "x")}
    positions = Positions(accounts, lambda tok: market.quote(tok).ltp / 100)
    now = [100.0]
    codes: list[str] = []
    book = OrderBook(market, market.clock, positions, False,
                     lambda _c, _row, code: codes.append(code),
                     fill_delay=lambda: 0.3, monotonic=lambda: now[0])
    params = order()
    inst = book.validate(params)
    assert not isinstance(inst, tuple)
    oid = book.place("C", params, inst).orderid
    book.process()  # admitted: at the exchange, not yet filled
    assert (book.orders[oid].status, codes) == ("open", ["AB09", "AB01"])
    now[0] += 0.29
    book.process()
    assert book.orders[oid].status == "open"
    now[0] += 0.02
    book.process()
    assert book.orders[oid].status == "complete" and codes[-1] == "AB05"


def test_the_profile_is_switched_through_the_faults_route(sim: Sim) -> None:
    sc = sim.client()
    assert sim.control("GET", "/sim/faults")["profile"]["name"] == "instant"
    chosen = sim.control("POST", "/sim/faults", {"profile": "angel"})["profile"]
    assert (chosen["name"], chosen["routes"]["placeOrder"]) == ("angel", [100, 300])
    started = time.monotonic()
    assert sc.placeOrderFullResponse(order())["status"] is True  # the unmodified SDK
    assert time.monotonic() - started >= 0.1
    started = time.monotonic()
    assert sc.orderBook()["status"] is True
    assert time.monotonic() - started >= 0.12
    bad = sim.http.post("/sim/faults", json={"profile": "slow"})
    assert bad.status_code == 400 and "unknown latency profile 'slow'" in bad.text
    assert sim.control("GET", "/sim/faults")["profile"]["name"] == "angel"  # unchanged
    sim.control("POST", "/sim/faults", {"profile": "instant"})
    assert sim.control("GET", "/sim/faults")["profile"]["name"] == "instant"
