"""Puts the feed's ticks on the Redis tick bus in batches, without adding latency.

One Redis round trip per tick capped the feed process near 6,000 ticks/s on an idle machine
(and far lower with the rest of the app sharing the cores): the socket thread spent ~85 % of
its time waiting for Redis. Now the socket threads only append `(exchange, token, paise, at)`
to a queue and wake one writer thread, which sends everything queued in a single pipeline.

No added latency: the writer flushes as soon as it is woken, it never waits for a batch to
fill. A lone tick goes out alone, one round trip after it arrived; under load, the ticks that
arrive while a pipeline is in flight form the next batch, so the batch size follows the load
and throughput is no longer bound by the round trip. (Flushing from the socket thread "when
the socket has no more data ready" was the alternative; it needs a timer anyway, because the
frame after a tick may be a ping rather than data, and it blocks reading behind Redis.)

What reaches Redis is what the per-tick path wrote, in the same order:
- every tick is PUBLISHed on `ticks:{EXCH}:{token}` (the monitor's contract, tickbus), in
  arrival order: no coalescing, since a dip below a stop that recovers within one batch must
  still exit;
- the latest-price key `ats:ltp:{EXCH}:{token}` (prices.read_tick) is SET once per batch per
  instrument with the last tick of the batch (last price wins: only the latest is readable
  anyway), before the batch's PUBLISHes, so a subscriber reading the key on a tick sees a
  price at least that new.

Batches go out one at a time, so order per instrument holds across batches. If Redis is
down, a failed batch is dropped (as a failed per-tick write was) and the queue is bounded
(oldest ticks dropped first): on recovery the newest prices go out, not a backlog.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import redis

from ats_app.engine.prices import TICK_TTL_S, ltp_key, ltp_payload_paise
from ats_app.engine.tickbus import TICK_PREFIX, encode_tick

log = logging.getLogger("ats.feed")

MAX_BATCH = 2000  # ticks per pipeline: bounds one flush's memory and the reply parsing
ERROR_PAUSE_S = 0.1
MAX_QUEUE = 100_000  # ~10 s of the largest feed (3 sockets x 1,000 tokens x ~3/s)

Tick = tuple[str, str, int, float]  # (exchange, token, ltp paise, received at epoch s)


class TickWriter:
    """Queue from any thread with `put`; one writer thread pipelines to Redis."""

    def __init__(self, r: redis.Redis, *, max_batch: int = MAX_BATCH,
                 max_queue: int = MAX_QUEUE) -> None:
        self._redis = r
        self.max_batch = max_batch
        self._queue: deque[Tick] = deque(maxlen=max_queue)
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        # Observability (feed status, tests, benchmarks); written by the writer thread only.
        self.published = 0
        self.batches = 0
        self.errors = 0

    def start(self) -> TickWriter:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tick-writer", daemon=True)
            self._thread.start()
        return self

    def put(self, exchange: str, token: str, paise: int, at: float) -> None:
        """Queue one tick (exchange upper-case, as tickbus.EXCHANGE_BY_TYPE gives it)."""
        self._queue.append((exchange, token, paise, at))
        # is_set() is a plain read: only the first tick after a flush pays for set().
        if not self._wake.is_set():
            self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        """Flush what is queued and stop the writer thread."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def pending(self) -> int:
        return len(self._queue)

    # ------------------------------------------------------------ writer thread

    def _run(self) -> None:
        while True:
            self._wake.wait()
            # Cleared before draining: a put() after this point either lands in this drain or
            # sees the event clear and sets it, so no tick is left waiting for the next one.
            self._wake.clear()
            while self._queue:
                errors = self.errors
                try:
                    self.flush()
                except Exception:  # a bug, not Redis: this thread must outlive it, or the
                    self.errors += 1  # feed would look alive while publishing nothing
                    log.exception("tick writer: batch dropped")
                if self.errors != errors and not self._stopping:
                    time.sleep(ERROR_PAUSE_S)  # Redis is down: no hot loop; the queue is bounded
            if self._stopping:
                return

    def flush(self) -> int:
        """Send up to `max_batch` queued ticks in one pipeline; returns how many were taken.

        Called by the writer thread (tests may call it directly when no thread runs)."""
        queue, batch = self._queue, []
        take = min(len(queue), self.max_batch)
        for _ in range(take):
            batch.append(queue.popleft())
        if not batch:
            return 0
        latest: dict[str, tuple[int, float]] = {}
        pipe = self._redis.pipeline(transaction=False)
        messages: list[tuple[str, str]] = []
        for exchange, token, paise, at in batch:
            key = f"{exchange}:{token}"
            latest[key] = (paise, at)
            messages.append((TICK_PREFIX + key, encode_tick(paise, at)))
        # execute_command directly: Redis.set()'s argument handling cost more than the write.
        for key, (paise, at) in latest.items():
            exchange, _, token = key.partition(":")
            pipe.execute_command("SET", ltp_key(exchange, token), ltp_payload_paise(paise, at),
                                 "EX", TICK_TTL_S)
        for channel, message in messages:
            pipe.execute_command("PUBLISH", channel, message)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            self.errors += 1
            if self.errors % 100 == 1:
                log.error("cannot publish ticks to Redis (%d tick(s) dropped): %s",
                          len(batch), exc)
            return len(batch)
        self.published += len(batch)
        self.batches += 1
        return len(batch)
