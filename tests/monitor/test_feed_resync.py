"""The feed process's run loop: a burst of position events is one resync, not one each (a
resync reads every open position; a storm of them starved the socket threads), and a lone
event still resyncs at once."""

from __future__ import annotations

import json
import threading
import time

import redis

from ats_app.engine.execution.positions import POSITIONS_CHANNEL
from ats_app.engine.market.tickbus import FeedSettings
from ats_app.engine.services.feed import FeedProcess


class _Counting(FeedProcess):
    def __init__(self, r: redis.Redis) -> None:
        super().__init__(r, FeedSettings())
        self.resyncs: list[float] = []

    def resync(self) -> None:  # the database read it stands for is what must not repeat
        self.resyncs.append(time.monotonic())


def _wait(pred: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)


def test_an_event_burst_is_one_resync_and_a_lone_event_resyncs_at_once(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    feed = _Counting(r)
    runner = threading.Thread(target=feed.run, daemon=True)
    runner.start()
    try:
        _wait(lambda: feed.resyncs and r.pubsub_numsub(POSITIONS_CHANNEL)[0][1] == 1)
        time.sleep(0.3)
        base = len(feed.resyncs)
        pipe = r.pipeline(transaction=False)
        for i in range(1000):
            pipe.publish(POSITIONS_CHANNEL, json.dumps({"event": "opened", "position_id": i}))
        # Stamped before sending: the feed can drain the burst and resync before this client
        # has read the 1,000 PUBLISH replies (CI saw it land 1.6 ms before execute returned).
        burst_at = time.monotonic()
        pipe.execute()
        time.sleep(1.0)
        after = feed.resyncs[base:]
        assert 1 <= len(after) <= 3, f"{len(after)} resyncs for one burst"
        assert burst_at <= after[0] < burst_at + 0.5
        base = len(feed.resyncs)
        r.publish(POSITIONS_CHANNEL, json.dumps({"event": "closed", "position_id": 1}))
        lone_at = time.monotonic()
        _wait(lambda: len(feed.resyncs) > base)
        assert len(feed.resyncs) == base + 1 and feed.resyncs[-1] - lone_at < 0.5
    finally:
        feed.stopping.set()
        runner.join(10)
