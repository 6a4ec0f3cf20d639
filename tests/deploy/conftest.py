"""A private redis-server per module: these tests start real workers and read the worker
registry, so they must not share a Redis database with other test sessions on the machine."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
import redis

from ats_app.engine.services.embedded_redis import free_port, redis_server_binary


@pytest.fixture(scope="module")
def private_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path_factory.mktemp("redis"))],
                            stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url, socket_connect_timeout=1).ping()
            break
        except redis.ConnectionError:
            assert proc.poll() is None and time.monotonic() < deadline, "redis-server failed"
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)
