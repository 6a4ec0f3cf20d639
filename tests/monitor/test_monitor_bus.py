"""The monitor's reading of the tick bus: every tick of a flood counted, none lost to the
batched socket reads, and ticks still guarded after Redis restarts under it (a private
redis-server on a free port, killed and started again on the same port)."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from rq.job import Job

from ats_app.engine.market.tickbus import FeedSettings, encode_tick, tick_channel
from ats_app.engine.services.embedded_redis import redis_server_binary
from ats_app.engine.services.monitor import Monitor
from tests.monitor.test_monitor_units import _position


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    def __init__(self, workdir: Path) -> None:
        self.port, self.dir = _free_port(), workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(self.port),
             "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: self._answers(), 10, "redis-server to start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port).ping())
        except redis.ConnectionError:
            return False


def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    srv = _Server(tmp_path)
    srv.start()
    yield srv
    if srv.proc is not None and srv.proc.poll() is None:
        srv.kill()


def _subscribers(port: int, channel: str) -> int:
    try:
        return int(dict(redis.Redis(port=port).pubsub_numsub(channel))[channel.encode()])
    except redis.ConnectionError:
        return 0


def test_a_tick_flood_is_counted_whole_and_a_stop_still_sells_after_redis_restarts(
        database_url: str, server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATS_SIMULATOR", "false")
    pid = _position()  # NFO:43650, entry 100.00, stop 95.00, trailing 2 %: 98.00
    channel = tick_channel("NFO", "43650")
    r = redis.Redis(port=server.port)
    m = Monitor(r, FeedSettings(stale_seconds=30))
    runner = threading.Thread(target=m.run, daemon=True)
    runner.start()
    try:
        _wait(lambda: _subscribers(server.port, channel) == 1, 20, "the monitor to subscribe")
        # 5,000 ticks between stops and entry in one write: most are read in batches
        # straight off the socket.
        pipe = r.pipeline(transaction=False)
        for i in range(5000):
            pipe.publish(channel, encode_tick(10000 - 5 * (i % 10), time.time()))
        pipe.execute()
        _wait(lambda: m.ticks_seen == 5000, 20, "every tick of the flood")
        assert m.exits_enqueued == 0 and m.watch.get(pid) is not None

        server.kill()
        time.sleep(0.3)  # the monitor finds its connection gone
        server.start()
        _wait(lambda: _subscribers(server.port, channel) == 1, 20,
              "the monitor to subscribe again after the restart")
        seen = m.ticks_seen
        r.publish(channel, encode_tick(9400, time.time()))  # under both stops
        _wait(lambda: m.exits_enqueued == 1, 20, "the stop's sell")
        assert m.ticks_seen == seen + 1
        assert Job.fetch(f"exit-{pid}", connection=r).args == (pid, "trailing_stop")
    finally:
        m.stop()
        runner.join(20)
