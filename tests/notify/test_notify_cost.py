"""What emit() costs the order path: Redis round trips and wall time, measured."""

from __future__ import annotations

import statistics
import time

import pytest
import redis.connection

from ats_app.engine.notify import targets as nt
from ats_app.engine.notify.notices import Event, emit

from .conftest import HttpSink
from .test_notify_delivery import SAMPLES, _user

N = 300


class _RoundTrips:
    """Counts requests written to Redis: a pipeline or a script call is one round trip."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = redis.connection.AbstractConnection.send_packed_command

        def counting(conn: object, command: object, check_health: bool = True) -> None:
            self.count += 1
            return original(conn, command, check_health)

        monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)


def _measure(fn, trips: _RoundTrips) -> tuple[float, float, float]:
    times = []
    before = trips.count
    for i in range(N):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    times.sort()
    return (trips.count - before) / N, statistics.median(times), times[int(N * 0.99)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_emit_cost(notify_env: dict, http_sink: HttpSink, monkeypatch: pytest.MonkeyPatch,
                   capsys: pytest.CaptureFixture) -> None:
    alice = _user("alice", http_sink.url("/alice"))
    bob = _user("bob")  # no targets
    fill = SAMPLES[Event.ORDER_FILLED]
    emit(alice, Event.ORDER_FILLED, **fill)  # warm: cached switches, loaded Lua script
    emit(bob, Event.ORDER_FILLED, **fill)
    trips = _RoundTrips(monkeypatch)

    queued = _measure(lambda i: emit(alice, Event.ORDER_FILLED, once=f"o{i}", **fill), trips)
    unwanted = _measure(lambda i: emit(bob, Event.ORDER_FILLED, **fill), trips)
    limited = _measure(lambda i: emit(alice, Event.FEED_STALE, seconds=5), trips)
    with capsys.disabled():
        for name, (rt, med, p99) in (("queued", queued), ("not wanted", unwanted),
                                     ("rate-limited", limited)):
            print(f"\nemit {name}: {rt:.2f} Redis round trips, median {med * 1e3:.2f} ms, "
                  f"p99 {p99 * 1e3:.2f} ms")
    assert queued[0] <= 3 and unwanted[0] == 1 and limited[0] <= 1.01
    assert queued[1] < 0.02 and unwanted[1] < 0.005  # generous: shared CI machines
    assert http_sink.attempts == 0
    assert nt.connection().llen("rq:queue:notifications") == N + 1 + 1  # + warm-up, + 1 stale
