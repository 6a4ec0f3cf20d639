"""Development services started by the backend: embedded Redis, RQ workers, monitor, feed,
order-update consumer, simulator.

In production (ATS_SPAWN_SERVICES=false, the default with ATS_ENV=prod) each of these runs as
its own service instead. A file lock makes sure only one backend process per data directory
spawns them, even when a server runs several backend workers.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
from dataclasses import dataclass, field
from typing import IO

from ats_app.engine.core.config import Settings, reset_settings_cache
from ats_app.engine.services import embedded_redis
from ats_app.engine.services.processes import child_env, python_child, stop

log = logging.getLogger("ats.supervisor")


@dataclass
class Supervisor:
    settings: Settings
    children: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    lock_file: IO[str] | None = None

    def _acquire_lock(self) -> bool:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        fh = open(self.settings.data_dir / "services.lock", "w")  # noqa: SIM115 - held for life
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        self.lock_file = fh
        return True

    def start(self) -> None:
        if not self._acquire_lock():
            log.info("another backend process runs the dev services; not starting them here")
            self._adopt_embedded_redis_url()
            return
        extra: dict[str, str] = {}
        if not self.settings.redis_url:
            proc, url = embedded_redis.start(self.settings.data_dir)
            self.children.append(("redis-server", proc))
            # Everything in this process and its children now uses the embedded server.
            os.environ["REDIS_URL"] = url
            reset_settings_cache()
            extra["REDIS_URL"] = url
            log.info("embedded redis-server at %s", url)
        env = child_env(extra)
        self.children.append(("rq-worker", python_child(["ats_app.cli", "worker"], env)))
        self.children.append(
            (
                "notify-worker",
                python_child(["ats_app.cli", "worker", "--queues", "notifications"], env),
            )
        )
        self.children.append(("monitor", python_child(["ats_app.cli", "monitor"], env)))
        self.children.append(("feed", python_child(["ats_app.cli", "feed"], env)))
        self.children.append(
            ("order-updates", python_child(["ats_app.cli", "order-updates"], env))
        )
        from ats_app.engine.telegram.binding import telegram_config

        if telegram_config().enabled:  # Telegram control only with the operator's bot token
            self.children.append(("telegram", python_child(["ats_app.cli", "telegram"], env)))
        if self.settings.simulator_enabled:
            port = str(self.settings.simulator_port)
            self.children.append(
                ("simulator", python_child(["ats_app.cli", "sim", "--port", port], env))
            )
        log.info("started %s", ", ".join(f"{n} (pid {p.pid})" for n, p in self.children))

    def _adopt_embedded_redis_url(self) -> None:
        url_file = self.settings.data_dir / "redis" / "redis.url"
        if not self.settings.redis_url and url_file.exists():
            os.environ["REDIS_URL"] = url_file.read_text().strip()
            reset_settings_cache()

    def stop(self) -> None:
        # Stop consumers before Redis so they can finish their current job cleanly.
        for name, proc in reversed(self.children):
            stop(proc, name)
        self.children.clear()
        if self.lock_file is not None:
            self.lock_file.close()
            self.lock_file = None

    def status(self) -> dict[str, bool]:
        return {name: proc.poll() is None for name, proc in self.children}
