"""Each injected fault, observed the way the SDK would see it from Angel."""

from __future__ import annotations

import time

import pytest
import requests
from sim_kit import Sim, order, wait_for
from SmartApi.smartExceptions import DataException


def _fault(sim: Sim, **spec: object) -> None:
    sim.control("POST", "/sim/faults", dict(spec))


def test_latency_http500_empty_invalid_token_rate_limit(sim: Sim) -> None:
    sc = sim.client()
    _fault(sim, route="getProfile", kind="latency", ms=300, times=1)
    started = time.monotonic()
    assert sc.getProfile(sc.refresh_token)["status"] is True
    assert time.monotonic() - started >= 0.3

    _fault(sim, route="getProfile", kind="http500", times=1)
    r = sc.getProfile(sc.refresh_token)
    assert (r["status"], r["errorcode"]) == (False, "AB1004")

    _fault(sim, route="getProfile", kind="empty", times=1)
    with pytest.raises(DataException, match="b''"):
        sc.getProfile(sc.refresh_token)

    _fault(sim, route="getProfile", kind="invalid_token", times=1)
    assert sc.getProfile(sc.refresh_token)["errorCode"] == "AG8001"

    _fault(sim, route="getProfile", kind="rate_limit", times=1)
    with pytest.raises(DataException, match="exceeding access rate"):
        sc.getProfile(sc.refresh_token)
    assert sc.getProfile(sc.refresh_token)["status"] is True  # counted faults expire


def test_timeout_fault_times_out_the_sdk(sim: Sim) -> None:
    # The read timeout applies to every call (login too): 1 s is ample for a prompt answer,
    # and the 5 s hold is far beyond it, so only the faulted call can time out.
    sc = sim.client(timeout=1.0)
    _fault(sim, route="getRMS", kind="timeout", ms=5000)
    with pytest.raises(requests.exceptions.ReadTimeout):
        sc.rmsLimit()
    assert sim.control("GET", "/sim/faults")["faults"][0]["kind"] == "timeout"
    sim.control("DELETE", "/sim/faults", {"route": "getRMS"})
    assert sim.control("GET", "/sim/faults")["faults"] == []
    assert sc.rmsLimit()["status"] is True


def test_wildcard_fault_hits_every_route_until_cleared(sim: Sim) -> None:
    sc = sim.client()
    _fault(sim, route="*", kind="http500")
    assert sc.rmsLimit()["errorcode"] == "AB1004"
    assert sc.placeOrderFullResponse(order())["errorcode"] == "AB1004"
    sim.control("DELETE", "/sim/faults", {})
    assert sc.rmsLimit()["status"] is True


def test_reject_fault_accepts_then_rejects(sim: Sim) -> None:
    sc = sim.client()
    _fault(sim, route="placeOrder", kind="reject", message="RMS: price band", times=1)
    oid = sc.placeOrder(order())
    assert oid  # accepted with an order id...
    good = sc.placeOrder(order())

    def statuses() -> dict[str, str]:
        time.sleep(1.05)  # order book: 1 request/s
        return {o["orderid"]: (o["status"], o["text"]) for o in sc.orderBook()["data"]}

    book = wait_for(lambda: statuses().get(good, ("",))[0] == "complete" and statuses())
    assert book[oid] == ("rejected", "RMS: price band")  # ...and rejected a moment later


def test_unknown_fault_kind_is_a_400(sim: Sim) -> None:
    r = sim.http.post("/sim/faults", json={"kind": "meteor"})
    assert r.status_code == 400 and "unknown fault kind" in r.json()["error"]
