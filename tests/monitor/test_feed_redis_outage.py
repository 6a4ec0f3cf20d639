"""The feed outlives a Redis outage: down when it starts, or restarted while it runs, Redis
is waited for and the positions channel subscribed again. Found by the soak: the feed exited
(its re-subscribe raised) on every Redis restart, leaving positions unwatched until something
restarted it; under the dev supervisor nothing does."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis

from ats_app.engine.execution.positions import POSITIONS_CHANNEL
from ats_app.engine.market.tickbus import FEED_STATUS_KEY
from ats_app.engine.services.embedded_redis import free_port
from ats_app.simulator.server import ServerThread
from tests.monitor.kit import Procs, wait_for

FEED = ["ats_app.engine.services.feed"]


def _redis(port: int, tmp: Path) -> subprocess.Popen:
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(tmp)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conn = redis.Redis(port=port)
    wait_for(lambda: _pings(conn), 10, "redis-server up")
    return proc


def _pings(conn: redis.Redis) -> bool:
    try:
        return bool(conn.ping())
    except redis.RedisError:
        return False


def _subscribed(conn: redis.Redis) -> bool:
    try:
        return dict(conn.pubsub_numsub(POSITIONS_CHANNEL)).get(
            POSITIONS_CHANNEL.encode(), 0) > 0
    except redis.RedisError:
        return False


def test_the_feed_waits_out_redis_down_at_start_and_a_restart(
        database_url: str, sim: ServerThread, procs: Procs, tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    feed = procs.start("feed", FEED, REDIS_URL=url)  # nothing listens there yet
    time.sleep(2.0)
    assert feed.poll() is None, procs.log("feed")  # exited at once before
    server = _redis(port, tmp_path)
    try:
        conn = redis.Redis(port=port)
        wait_for(lambda: _subscribed(conn) and conn.get(FEED_STATUS_KEY), 20,
                 "the feed subscribed and its status written")
        server.kill()
        server.wait(10)
        time.sleep(1.5)  # the feed notices and retries meanwhile
        assert feed.poll() is None, procs.log("feed")
        server = _redis(port, tmp_path)
        conn = redis.Redis(port=port)
        wait_for(lambda: _subscribed(conn) and conn.get(FEED_STATUS_KEY), 20,
                 "the feed subscribed again after the restart")
        assert feed.poll() is None
    finally:
        server.kill()
        server.wait(10)
