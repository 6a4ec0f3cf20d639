"""The price monitor process (`python -m ats_app.cli monitor`).

It listens to per-instrument tick channels on Redis and publishes a heartbeat so the
dashboard and health checks can tell it is alive. Exit decisions (stop-loss, target,
trailing) are evaluated per tick by `exits.evaluate_exit` once positions are wired in.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from types import FrameType

from ats_app.engine.redis_conn import MONITOR_HEARTBEAT_KEY, connect

TICK_CHANNEL_PATTERN = "ticks:*"
HEARTBEAT_SECONDS = 1.0
RECOVERY_SECONDS = 30.0  # how often lost alert jobs are looked for

log = logging.getLogger("ats.monitor")


def tick_channel(exchange: str, token: str) -> str:
    return f"ticks:{exchange}:{token}"


class Monitor:
    def __init__(self) -> None:
        self.conn = connect()
        self.stopping = False
        self.ticks_seen = 0

    def stop(self, *_: object) -> None:
        self.stopping = True

    def heartbeat(self) -> None:
        beat = {"at": time.time(), "ticks_seen": self.ticks_seen}
        self.conn.set(MONITOR_HEARTBEAT_KEY, json.dumps(beat), ex=10)

    def recover(self) -> None:
        from ats_app.engine.recovery import cleanup_abandoned_jobs, requeue_lost_alerts

        try:
            cleanup_abandoned_jobs(self.conn)
            requeue_lost_alerts(self.conn)
        except Exception:  # keep watching prices whatever happens here
            log.exception("alert recovery failed")

    def run(self) -> None:
        pubsub = self.conn.pubsub(ignore_subscribe_messages=True)
        pubsub.psubscribe(TICK_CHANNEL_PATTERN)
        next_beat = 0.0
        next_recovery = time.monotonic() + RECOVERY_SECONDS
        while not self.stopping:
            now = time.monotonic()
            if now >= next_beat:
                self.heartbeat()
                next_beat = now + HEARTBEAT_SECONDS
            if now >= next_recovery:
                self.recover()
                next_recovery = now + RECOVERY_SECONDS
            message = pubsub.get_message(timeout=0.2)
            if message is not None:
                self.ticks_seen += 1
        pubsub.close()
        self.conn.delete(MONITOR_HEARTBEAT_KEY)


def run_monitor() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s monitor %(levelname)s %(message)s")
    monitor = Monitor()

    def _stop(signum: int, frame: FrameType | None) -> None:
        monitor.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("monitor started")
    monitor.run()
    log.info("monitor stopped")
