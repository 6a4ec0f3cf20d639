"""The feed's batched tick writer against a real Redis: every tick published, in order; the
latest-price key last-price-wins; a lone tick not held back; Redis down costs ticks, not the
feed."""

from __future__ import annotations

import json
import statistics
import time
from decimal import Decimal
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ats_app.engine.broker.prices import ltp_payload_paise, read_tick
from ats_app.engine.market.tickbus import decode_tick, encode_tick
from ats_app.engine.market.tickwriter import TickWriter


def _collect(ps: Any, want: int, timeout: float = 10.0) -> list[tuple[str, int, float]]:
    out: list[tuple[str, int, float]] = []
    deadline = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        msg = ps.get_message(timeout=0.2)
        if msg and msg["type"] == "pmessage":
            price, at, src = decode_tick(msg["data"])
            assert src == "ws"
            out.append((msg["channel"].decode(), price, at))
    return out


def _subscriber(url: str) -> Any:
    ps = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
    ps.psubscribe("ticks:*")
    ps.get_message(timeout=1.0)  # the psubscribe confirmation
    return ps


def test_a_burst_on_many_tokens_reaches_the_bus_in_order_and_the_last_price_wins(
        redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    ps = _subscriber(redis_url)
    w = TickWriter(r, max_batch=1000)
    sent = []
    for i in range(2500):  # queued before the writer starts: one burst, 3 pipelines
        exch, token = ("NFO", str(40000 + i % 250)) if i % 5 else ("NSE", str(3000 + i % 7))
        paise = 10_000 + 5 * i
        w.put(exch, token, paise, 1_700_000_000.0 + i / 1000)
        sent.append((f"ticks:{exch}:{token}", paise, 1_700_000_000.0 + i / 1000))
    w.start()
    got = _collect(ps, len(sent))
    w.close()
    assert got == sent  # every tick, none coalesced, in arrival order
    assert (w.published, w.batches, w.errors) == (2500, 3, 0)
    last: dict[str, tuple[int, float]] = {}
    for channel, paise, at in sent:
        last[channel.removeprefix("ticks:")] = (paise, at)
    for key, (paise, at) in last.items():
        exch, token = key.split(":")
        q = read_tick(r, exch, token, max_age=None)
        assert q is not None and q.ltp == Decimal(paise) / 100
        assert abs(q.at.timestamp() - at) < 1e-5
        assert q.bid is None and q.ask is None
        assert 0 < r.ttl(f"ats:ltp:{key}") <= 300


def test_a_lone_tick_nobody_flushes_goes_out_by_the_backstop(redis_url: str) -> None:
    # (The socket thread's own flush at the end of a burst: the test at the end of this file.)
    r = redis.Redis.from_url(redis_url)
    ps = _subscriber(redis_url)
    w = TickWriter(r).start()
    prices, waits = [20_000 + 5 * i for i in range(5)], []
    try:
        for price in prices:  # each alone, the writer idle in between
            time.sleep(0.2)
            put_at = time.monotonic()
            w.put("NFO", "43650", price, time.time())
            got = _collect(ps, 1, timeout=2.0)  # without the backstop it never goes out
            waits.append(time.monotonic() - put_at)
            assert [g[:2] for g in got] == [("ticks:NFO:43650", price)]
    finally:
        w.close()
    # The backstop's 5 ms and a round trip, not a batch filling up: the median of five, so one
    # stall of a loaded CI runner does not decide it.
    assert statistics.median(waits) < 0.05, [f"{x * 1000:.1f} ms" for x in waits]
    assert (w.batches, w.published) == (5, 5)  # each went out on its own


def test_redis_down_drops_ticks_without_failing_and_the_queue_is_bounded(
        redis_url: str) -> None:
    from ats_app.engine.services.embedded_redis import free_port

    # No client-side retries: redis-py's default back-off would only make the test slow.
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2,
                       retry=Retry(NoBackoff(), 0))
    w = TickWriter(dead, max_queue=100)
    for i in range(250):
        w.put("NFO", "1", 100 + i, float(i))
    assert w.pending() == 100  # the oldest went first: the newest prices are what matter
    assert w.flush() == 100 and w.errors == 1 and w.published == 0
    w.start()
    w.put("NFO", "1", 1, 1.0)
    w.close()
    assert w.pending() == 0 and w.errors == 2


def test_fast_encodings_are_the_json_the_readers_expect() -> None:
    for paise, at in ((10235, 1_764_061_200.25), (5, 0.1), (12_345_600, 1e9 + 1 / 3)):
        assert json.loads(encode_tick(paise, at)) == {"ltp_paise": paise, "at": at, "src": "ws"}
        assert encode_tick(paise, at) == json.dumps({"ltp_paise": paise, "at": at,
                                                      "src": "ws"})
        body = json.loads(ltp_payload_paise(paise, at))
        assert Decimal(body["ltp"]) == Decimal(paise) / 100 and body["at"] == at
        assert body["bid"] is None and body["ask"] is None
    assert json.loads(encode_tick(1, 2.0, 'we"ird'))["src"] == 'we"ird'


def test_a_bad_batch_does_not_kill_the_writer(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    ps = _subscriber(redis_url)
    w = TickWriter(r).start()
    try:
        w.put("NFO", "1", 100, float("nan"))  # the latest-price JSON refuses a NaN time
        deadline = time.monotonic() + 5
        while w.errors == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert w.errors == 1
        w.put("NFO", "1", 105, time.time())
        assert [g[:2] for g in _collect(ps, 1)] == [("ticks:NFO:1", 105)]
    finally:
        w.close()


def test_the_feed_flushes_at_the_end_of_a_burst_or_when_a_burst_runs_long(
        redis_url: str) -> None:
    from ats_app.engine.market.tickbus import FeedSettings
    from ats_app.engine.services.feed import FeedProcess

    r = redis.Redis.from_url(redis_url)
    ps = _subscriber(redis_url)
    feed = FeedProcess(r, FeedSettings())  # writer not started: no backstop in this test
    feed.writer.max_delay = 0.05
    for i in range(3):  # three frames of one burst: queued, nothing sent yet
        feed.publish_tick("NFO", str(100 + i), 500 + i, time.time())
    assert feed.writer.pending() == 3 and feed.writer.published == 0
    feed.end_of_burst()  # the socket has nothing more: they go now, in one pipeline
    assert [g[:2] for g in _collect(ps, 3)] == [(f"ticks:NFO:{100 + i}", 500 + i)
                                               for i in range(3)]
    assert (feed.writer.published, feed.writer.batches) == (3, 1)
    feed.publish_tick("NFO", "7", 700, time.time())
    time.sleep(0.06)  # frames kept coming for longer than max_delay
    feed.publish_tick("NFO", "7", 705, time.time())  # this frame's own call flushes both
    assert feed.writer.pending() == 0
    assert [g[1] for g in _collect(ps, 2)] == [700, 705]
    assert r.get("ats:ltp:NFO:7") is not None and read_tick(r, "NFO", "7").ltp == Decimal("7.05")
