"""Puts the feed's ticks on the Redis tick bus in batches, without adding latency.

One Redis round trip per tick capped the feed process near 6,000 ticks/s on an idle machine
(the socket thread spent ~85 % of its time waiting for Redis). Now ticks are queued and sent
in one pipeline per burst:

- the socket thread flushes itself as soon as its socket has no further frame ready
  (`FeedSocket.on_drained`), so a lone tick goes out at once, in the thread that received it;
- while frames keep coming, it flushes whenever the oldest queued tick is `max_delay` old or
  `max_batch` ticks are queued (`due()`), so a long burst cannot hold ticks back;
- a backstop thread flushes anything still queued `BACKSTOP_S` after it was queued, should a
  burst end in something that does not reach `on_drained` (a close frame, a reader error).

Flushing in the socket thread matters: handing every batch to another thread cost 5-10 ms
per tick under bursts, the time CPython lets a busy thread keep the GIL before a waiting one
runs (the previous version of this module did exactly that).

What reaches Redis is what the per-tick path wrote, in the same order:
- every tick is PUBLISHed on `ticks:{EXCH}:{token}` (the monitor's contract, tickbus), in
  arrival order: no coalescing, since a dip below a stop that recovers within one batch must
  still exit;
- the latest-price key `ats:ltp:{EXCH}:{token}` (prices.read_tick) is SET once per batch per
  instrument with the last tick of the batch (last price wins: only the latest is readable
  anyway), before the batch's PUBLISHes, so a subscriber reading the key on a tick sees a
  price at least that new.

Flushes are serialised by a lock, so order per instrument holds across batches and threads.
If Redis is down, a failed batch is dropped (as a failed per-tick write was) and the queue is
bounded (oldest ticks dropped first): on recovery the newest prices go out, not a backlog.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import redis

from ats_app.engine.broker.prices import TICK_TTL_S, ltp_key, ltp_payload_paise
from ats_app.engine.market.tickbus import TICK_PREFIX, encode_tick

log = logging.getLogger("ats.feed")

MAX_BATCH = 500  # ticks per pipeline: bounds one flush's memory and a burst's first tick
# The most a queued tick waits while frames keep arriving (a simulator round or a busy
# market is a continuous stream): ~0.5 ms, against one round trip per flush of ~0.1-0.2 ms.
MAX_DELAY_S = 0.0002
BACKSTOP_S = 0.005  # the safety net's delay: only when no frame followed to flush the queue
ERROR_PAUSE_S = 0.1
MAX_QUEUE = 100_000  # ~10 s of the largest feed (3 sockets x 1,000 tokens x ~3/s)

Tick = tuple[str, str, int, float]  # (exchange, token, ltp paise, received at epoch s)


class TickWriter:
    """`put` from the socket threads, `flush` when their socket is drained or `due()`."""

    def __init__(self, r: redis.Redis, *, max_batch: int = MAX_BATCH,
                 max_delay: float = MAX_DELAY_S, backstop: float = BACKSTOP_S,
                 max_queue: int = MAX_QUEUE) -> None:
        self._redis = r
        self.max_batch, self.max_delay, self.backstop = max_batch, max_delay, backstop
        self._queue: deque[Tick] = deque(maxlen=max_queue)
        self._oldest = 0.0  # monotonic time the oldest queued tick was put
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        # Observability (feed status, tests, benchmarks); updated under the flush lock.
        self.published = 0
        self.batches = 0
        self.errors = 0
        self.backstop_flushes = 0

    def start(self) -> TickWriter:
        if self._thread is None:
            self._thread = threading.Thread(target=self._backstop, name="tick-writer",
                                            daemon=True)
            self._thread.start()
        return self

    def put(self, exchange: str, token: str, paise: int, at: float) -> None:
        """Queue one tick (exchange upper-case, as tickbus.EXCHANGE_BY_TYPE gives it)."""
        queue = self._queue
        if not queue:
            self._oldest = time.monotonic()
        queue.append((exchange, token, paise, at))
        # is_set() is a plain read: only the first tick after a backstop round pays for set().
        if not self._wake.is_set():
            self._wake.set()

    def due(self) -> bool:
        """Queued ticks should go now although more frames are coming."""
        n = len(self._queue)
        return n >= self.max_batch or (
            n > 0 and time.monotonic() - self._oldest >= self.max_delay)

    def pending(self) -> int:
        return len(self._queue)

    def close(self, timeout: float = 5.0) -> None:
        """Flush what is queued and stop the backstop thread."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        else:
            self.flush()

    def flush(self) -> int:
        """Send everything queued, `max_batch` ticks per pipeline; returns how many were
        taken. Any thread; one flush at a time."""
        taken = 0
        with self._flush_lock:
            limit = len(self._queue)  # not a loop without end while Redis is down
            while self._queue and taken < limit:
                try:
                    taken += self._flush_batch()
                except Exception:  # a bug, not Redis: the feed must outlive it, or it would
                    self.errors += 1  # look alive while publishing nothing
                    log.exception("tick writer: batch dropped")
                    taken = limit
        return taken

    # ------------------------------------------------------------ internals

    def _backstop(self) -> None:
        while not self._stopping:
            self._wake.wait()
            # Cleared before looking: a put() after this either is seen below or sets the
            # event again, so no tick waits for a later one.
            self._wake.clear()
            if not self._stopping:
                # The socket threads normally flush long before; sleeping here (rather than
                # waking per tick) keeps this thread off the GIL under load.
                time.sleep(self.backstop)
            if self._queue and (self._stopping
                                or time.monotonic() - self._oldest >= self.backstop):
                errors = self.errors
                if self.flush():
                    self.backstop_flushes += 1
                if self.errors != errors and not self._stopping:
                    time.sleep(ERROR_PAUSE_S)  # Redis down: no hot loop; the queue is bounded
        self.flush()

    def _flush_batch(self) -> int:
        queue, batch = self._queue, []
        for _ in range(min(len(queue), self.max_batch)):
            batch.append(queue.popleft())
        if queue:  # what is left is younger than what we took: restart its clock
            self._oldest = time.monotonic()
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
