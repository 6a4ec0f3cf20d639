"""REST prices for instruments whose feed is stale, so a dead socket never leaves a position
unguarded.

One thread per price source (client code), started when that source has a stale instrument
and ended when it has none. Each asks `AngelBroker.quote` for its instruments in turn, at most
once per `interval` each; the broker's Redis rate limiter keeps every process on the account
together inside Angel's 10 quotes/s, and a source at its limit slows only its own thread.
Prices go back to the monitor through `deliver(instrument, ltp_paise, at)`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import redis

from ats_app.engine.broker.base import Contract
from ats_app.engine.broker.errors import BrokerError
from ats_app.engine.broker.factory import angel_broker
from ats_app.engine.core.money import to_paise
from ats_app.engine.market.feed_sources import source_key
from ats_app.engine.tenants.accounts import Credentials

log = logging.getLogger("ats.monitor")


@dataclass(frozen=True)
class StaleInstrument:
    instrument: str  # "EXCH:token"
    exchange: str
    token: str
    symbol: str
    tick_paise: int
    creds: Credentials


class RestFallback:
    def __init__(self, r: redis.Redis, deliver: Callable[[str, int, float], None], *,
                 interval: float = 1.0) -> None:
        self._redis = r
        self._deliver = deliver
        self.interval = interval
        self._lock = threading.Lock()
        self._wanted: dict[str, list[StaleInstrument]] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._stop = threading.Event()
        self.quotes = 0  # prices delivered (observability, tests)

    def update(self, items: list[StaleInstrument]) -> None:
        grouped: dict[str, list[StaleInstrument]] = {}
        for it in items:
            grouped.setdefault(source_key(it.creds), []).append(it)
        with self._lock:
            self._wanted = grouped
            for key, group in grouped.items():
                thread = self._threads.get(key)
                if thread is None or not thread.is_alive():
                    thread = threading.Thread(target=self._loop, args=(key, group[0].creds),
                                              name=f"rest-{key}", daemon=True)
                    self._threads[key] = thread
                    thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in list(self._threads.values()):
            thread.join(10)

    def _snapshot(self, key: str) -> list[StaleInstrument] | None:
        with self._lock:
            items = self._wanted.get(key)
            if not items:
                self._threads.pop(key, None)  # decided under the lock: update() restarts us
                return None
            return list(items)

    def _loop(self, key: str, creds: Credentials) -> None:
        broker = angel_broker(creds, self._redis, timeout=3.0)
        last: dict[str, float] = {}
        failures = 0
        try:
            while not self._stop.is_set():
                items = self._snapshot(key)
                if items is None:
                    return
                for it in items:
                    if self._stop.is_set() or time.monotonic() - last.get(it.instrument, 0.0) \
                            < self.interval:
                        continue
                    last[it.instrument] = time.monotonic()
                    contract = Contract(exchange=it.exchange, tradingsymbol=it.symbol,
                                        symboltoken=it.token, lot_size=1,
                                        tick_size=Decimal(it.tick_paise) / 100)
                    try:
                        q = broker.quote(contract)
                    except BrokerError as exc:
                        failures += 1
                        if failures % 20 == 1:
                            log.warning("REST quote for stale %s failed: %s", it.instrument, exc)
                        continue
                    paise = to_paise(q.ltp)
                    if paise:
                        self.quotes += 1
                        self._deliver(it.instrument, paise, time.time())
                self._stop.wait(0.05)
        finally:
            broker.close()
