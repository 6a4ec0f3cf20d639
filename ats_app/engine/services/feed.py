"""The market-data process (`python -m ats_app.cli feed`).

It keeps SmartWebSocketV2 sockets (the official SDK client) open for the instruments of open
positions and puts every tick on Redis: the latest-price key (`prices.read_tick`'s, which paper
trading reads) and the per-instrument channel `ticks:{EXCH}:{token}` (which the monitor reads),
batched by `tickwriter.TickWriter`: one pipeline per burst, sent by the socket thread when no
further frame is ready (never waiting for a batch to fill).

- One source per Angel client code (or the local simulator), at most 3 sockets of at most
  1,000 tokens each: Angel's limits. Never one socket per worker or per position.
- Which instruments: OPEN and EXITING positions in the database, re-read on every
  `ats:positions` event and every few seconds; a token is unsubscribed once no open position
  needs it.
- Also the spots of the index underlyings ATM strikes are picked from (`SPOT_UNDERLYINGS`, the
  rows of the source's own instrument master; names it lacks are skipped), so an option
  alert's job reads its spot from Redis instead of quoting it. Their source: the simulator
  when it is enabled, else the lowest-id broker account of a user whose bot is running
  (`SourceResolver.for_spots`); with neither, no spots (jobs quote). They share that source's
  sockets and limits with its positions and stay subscribed whatever positions do. The
  spots' server is published (`ats:feed:spots`): a job uses them only for accounts on it.
- Each socket has a supervisor thread that reconnects without limit (jittered exponential
  back-off) and subscribes everything again in `on_open`: the SDK's own retry gives up after
  one attempt, and its resubscribe relies on `input_request_dict`, a class attribute shared
  by every socket in the process.
- A watchdog closes sockets that stay open but deliver nothing; per-instrument staleness is
  published in `ats:feed:status` (see `tickbus`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import redis

from ats_app.engine.broker.factory import angel_broker
from ats_app.engine.broker.feed_socket import FeedSocket
from ats_app.engine.execution import contracts
from ats_app.engine.execution.positions import POSITIONS_CHANNEL
from ats_app.engine.exits.watchlist import active_positions
from ats_app.engine.market.feed_sources import (
    MAX_SOCKETS_PER_CLIENT,
    MAX_TOKENS_PER_SOCKET,
    SPOT_UNDERLYINGS,
    Backoff,
    SourceResolver,
    feed_url,
    socket_silent,
    source_key,
)
from ats_app.engine.market.instruments import InstrumentIndex
from ats_app.engine.market.tickbus import (
    EXCHANGE_BY_TYPE,
    EXCHANGE_TYPES,
    FEED_SPOTS_KEY,
    FEED_STATUS_KEY,
    FeedSettings,
    instrument_key,
    server_name,
)
from ats_app.engine.market.tickwriter import TickWriter
from ats_app.engine.services.processes import STOP_GRACE_S, exit_within
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.redis_conn import connect
from ats_app.engine.tenants.accounts import Credentials

log = logging.getLogger("ats.feed")
RESUBSCRIBE_S = 0.5  # while Redis is down, the positions channel is tried again this often

Token = tuple[int, str]  # (exchange type, symbol token)
RESYNC_SECONDS = 5.0
MIN_RESYNC_GAP = 0.1  # event-driven resyncs at most 10/s, however fast events arrive
LTP_MODE = 1
MASTER_RETRY_S = 60.0  # an unreadable master is retried this often, not on every resync


def spot_tokens(index: InstrumentIndex, names: tuple[str, ...]) -> set[Token]:
    """The spot rows of `names` in `index` as feed tokens; names it lacks are skipped."""
    out: set[Token] = set()
    for name in names:
        row = index.spot_instrument(name)
        exch = EXCHANGE_TYPES.get(row.exchange.upper()) if row is not None else None
        if row is not None and exch is not None:
            out.add((exch, row.token))
    return out


def _token_list(tokens: set[Token]) -> list[dict[str, Any]]:
    groups: dict[int, list[str]] = {}
    for exch, tok in sorted(tokens):
        groups.setdefault(exch, []).append(tok)
    return [{"exchangeType": e, "tokens": t} for e, t in groups.items()]


class FeedConnection:
    """One socket and the thread that keeps it connected."""

    def __init__(self, key: str, index: int, creds: Credentials, r: redis.Redis,
                 on_tick: Callable[[str, str, int, float], None], settings: FeedSettings,
                 on_drained: Callable[[], None] = lambda: None) -> None:
        self.key, self.index, self.creds = key, index, creds
        self._redis, self._on_tick, self.settings = r, on_tick, settings
        self._on_drained = on_drained
        self.tokens: set[Token] = set()
        self.subscribed: set[Token] = set()
        self.state = "connecting"
        self.connected_at: float | None = None
        self.last_data_at: float | None = None
        self.reconnects = 0
        self.error: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ws: FeedSocket | None = None
        self._relogin = False
        self.thread = threading.Thread(target=self._run, name=f"feed-{key}-{index}", daemon=True)

    # ------------------------------------------------------------ control (any thread)

    def set_tokens(self, tokens: set[Token]) -> None:
        with self._lock:  # held while sending, so on_open's full subscribe cannot interleave
            self.tokens = set(tokens)
            ws = self._ws if self.state == "connected" else None
            if ws is None:
                return
            add, remove = self.tokens - self.subscribed, self.subscribed - self.tokens
            try:
                if remove:
                    ws.unsubscribe("atsunsub01", LTP_MODE, _token_list(remove))
                if add:
                    ws.subscribe("atssub0001", LTP_MODE, _token_list(add))
                self.subscribed = set(self.tokens)
            except Exception as exc:  # socket just died: on_open will subscribe everything
                log.warning("feed %s/%d: subscription change failed: %s", self.key, self.index,
                            exc)

    def check_silent(self, now: float) -> bool:
        if not socket_silent(now, self.connected_at, self.last_data_at, len(self.subscribed),
                             self.settings.silent_seconds):
            return False
        log.warning("feed %s/%d: open but silent for %.0f s; reconnecting", self.key,
                    self.index, self.settings.silent_seconds)
        self.error = "silent socket"
        ws = self._ws
        if ws is not None:
            ws.kill()
        return True

    def start(self) -> FeedConnection:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        ws = self._ws
        if ws is not None:
            ws.kill()
        self.thread.join(10)

    def status(self) -> dict[str, Any]:
        return {"source": self.key, "index": self.index, "state": self.state,
                "tokens": len(self.tokens), "subscribed": len(self.subscribed),
                "last_tick_at": self.last_data_at, "reconnects": self.reconnects,
                "error": self.error}

    # ------------------------------------------------------------ socket thread

    def _socket(self) -> FeedSocket:
        session = angel_broker(self.creds, self._redis, timeout=5.0).session
        tokens = session.tokens()
        if self._relogin:  # the server refused the handshake: these tokens are dead
            tokens = session.invalidate(tokens.jwt)
            self._relogin = False
        ws = FeedSocket(url=feed_url(self.creds.base_url), jwt=tokens.jwt,
                        api_key=self.creds.api_key, client_code=self.creds.client_id,
                        feed_token=tokens.feed)
        ws.on_open = self._on_open
        ws.on_data = self._on_data
        ws.on_ltp = self._on_ltp
        ws.on_drained = self._on_drained
        ws.on_error = lambda *a: None  # the cause is in ws.last_error
        ws.on_close = lambda *a: None
        ws.on_message = lambda *a: None
        return ws

    def _run(self) -> None:
        backoff = Backoff(cap=self.settings.backoff_max)
        while not self._stop.is_set():
            self.state, started = "connecting", time.time()
            ws: FeedSocket | None = None
            try:
                ws = self._socket()
                with self._lock:
                    self._ws = ws
                if not self._stop.is_set():
                    ws.connect()  # returns when the socket closes
                self._note_error(ws.last_error)
            except Exception as exc:  # login refused, DNS, anything: back off and retry
                self._note_error(exc)
            finally:
                with self._lock:
                    self._ws, self.state, self.connected_at = None, "down", None
                    self.subscribed = set()
            if self._stop.is_set():
                break
            if self.last_data_at is not None and self.last_data_at > started:
                backoff.reset()  # that session delivered ticks: start the back-off afresh
            self.reconnects += 1
            delay = backoff.next()
            log.info("feed %s/%d: reconnecting in %.2f s (%s)", self.key, self.index, delay,
                     self.error)
            self._stop.wait(delay)

    def _note_error(self, error: object) -> None:
        if error is None:
            self.error = "closed"
            return
        self.error = str(error)[:300] or type(error).__name__
        if getattr(error, "status_code", None) in (401, 403):
            self._relogin = True

    def _on_open(self, _wsapp: Any) -> None:
        with self._lock:
            ws = self._ws
            self.state, self.connected_at = "connected", time.time()
            self.error = None
            if ws is not None and self.tokens:
                ws.subscribe("atssuball1", LTP_MODE, _token_list(self.tokens))
                self.subscribed = set(self.tokens)
        log.info("feed %s/%d: connected, %d token(s)", self.key, self.index, len(self.tokens))

    def _on_data(self, _wsapp: Any, msg: dict[str, Any]) -> None:
        # Non-LTP packets only (the SDK's dict); LTP packets come through _on_ltp.
        self._on_ltp(int(msg.get("exchange_type", 0)), str(msg.get("token", "")),
                     msg.get("last_traded_price"))

    def _on_ltp(self, exchange_type: int, token: str, price: Any) -> None:
        now = time.time()
        self.last_data_at = now
        exchange = EXCHANGE_BY_TYPE.get(exchange_type)
        if exchange is None or not isinstance(price, int) or price <= 0:
            return
        self._on_tick(exchange, token, price, now)


class FeedProcess:
    def __init__(self, r: redis.Redis | None = None, settings: FeedSettings | None = None) -> None:
        self.redis = r or connect()
        self.settings = settings or FeedSettings.from_env()
        self.resolver = SourceResolver()
        self.conns: dict[str, list[FeedConnection]] = {}
        self.last_tick: dict[str, float] = {}
        self.wanted_since: dict[str, float] = {}
        self.stopping = threading.Event()
        self.writer = TickWriter(self.redis)
        self._master_failed: dict[str | None, float] = {}
        self.spots_server: str | None = None  # published as FEED_SPOTS_KEY

    # ------------------------------------------------------------ ticks (socket threads)

    def publish_tick(self, exchange: str, token: str, paise: int, now: float) -> None:
        # Queued: written when the socket has no further frame ready (end_of_burst), or now
        # if a long burst has held the queue `max_delay` or `max_batch` (see tickwriter).
        self.last_tick[f"{exchange}:{token}"] = now  # instrument_key(); exchange is upper
        writer = self.writer
        writer.put(exchange, token, paise, now)
        if writer.due():
            writer.flush()

    def end_of_burst(self) -> None:
        if self.writer.pending():
            self.writer.flush()

    # ------------------------------------------------------------ subscriptions

    def desired(self) -> dict[str, tuple[Credentials, set[Token]]]:
        out: dict[str, tuple[Credentials, set[Token]]] = {}
        positions = active_positions()
        with session_scope() as s:
            for p in positions:
                exch = EXCHANGE_TYPES.get(p.exchange.upper())
                creds = self.resolver.for_position(s, p)
                if exch is None or creds is None:
                    log.error("no market data source for position %s (%s:%s)", p.id,
                              p.exchange, p.symbol_token)
                    continue
                out.setdefault(source_key(creds), (creds, set()))[1].add((exch, p.symbol_token))
            spot_creds = self.resolver.for_spots(s)
        spots = self._spots(spot_creds.base_url) if spot_creds is not None else set()
        if spot_creds is not None and spots:
            out.setdefault(source_key(spot_creds), (spot_creds, set()))[1].update(spots)
        self.spots_server = server_name(spot_creds.base_url) if spot_creds and spots else None
        return out

    def _spots(self, base_url: str | None) -> set[Token]:
        failed_at = self._master_failed.get(base_url)
        if failed_at is not None and time.monotonic() - failed_at < MASTER_RETRY_S:
            return set()
        try:
            index = contracts.index_for(base_url)  # cached per process; reloaded daily
        except Exception as exc:  # master unreachable: positions are followed regardless
            log.warning("no instrument master for the index spots (%s): %s", base_url, exc)
            self._master_failed[base_url] = time.monotonic()
            return set()
        self._master_failed.pop(base_url, None)
        return spot_tokens(index, SPOT_UNDERLYINGS)

    def resync(self) -> None:
        desired = self.desired()
        now = time.time()
        wanted = {instrument_key(EXCHANGE_BY_TYPE[e], t)
                  for _, toks in desired.values() for e, t in toks}
        self.wanted_since = {k: self.wanted_since.get(k, now) for k in wanted}
        for key in set(self.conns) - set(desired):
            for c in self.conns.pop(key):
                c.stop()
        for key, (creds, tokens) in desired.items():
            self._assign(key, creds, tokens)

    def _assign(self, key: str, creds: Credentials, tokens: set[Token]) -> None:
        conns = self.conns.setdefault(key, [])
        plan: dict[int, set[Token]] = {}
        remaining = set(tokens)
        for i, c in enumerate(conns):  # tokens stay on their socket: no needless resubscribe
            plan[i] = c.tokens & remaining
            remaining -= plan[i]
        for tok in sorted(remaining):
            slot = next((i for i in plan if len(plan[i]) < MAX_TOKENS_PER_SOCKET), None)
            if slot is None and len(conns) < MAX_SOCKETS_PER_CLIENT:
                conns.append(FeedConnection(key, len(conns), creds, self.redis,
                                            self.publish_tick, self.settings,
                                            self.end_of_burst).start())
                slot = len(conns) - 1
                plan[slot] = set()
            if slot is None:
                log.error("feed %s: over Angel's %d x %d token limit; %s:%s not subscribed",
                          key, MAX_SOCKETS_PER_CLIENT, MAX_TOKENS_PER_SOCKET, *tok)
                continue
            plan[slot].add(tok)
        for i, c in enumerate(conns):
            c.set_tokens(plan.get(i, set()))
        while conns and not conns[-1].tokens:  # the last socket(s) emptied: close them
            conns.pop().stop()
        if not conns:
            self.conns.pop(key, None)

    # ------------------------------------------------------------ status and loop

    def stale(self, now: float) -> list[str]:
        limit = self.settings.stale_seconds
        return sorted(k for k, since in self.wanted_since.items()
                      if now - max(since, self.last_tick.get(k, 0.0)) > limit)

    def write_status(self) -> None:
        now = time.time()
        status = {"at": now, "pid": os.getpid(),
                  "connections": [c.status() for cs in self.conns.values() for c in cs],
                  "stale": self.stale(now), "ticks_published": self.writer.published,
                  "tick_batches": self.writer.batches, "tick_write_errors": self.writer.errors}
        self.redis.set(FEED_STATUS_KEY, json.dumps(status), ex=10)
        if self.spots_server is None:
            self.redis.delete(FEED_SPOTS_KEY)
        else:
            self.redis.set(FEED_SPOTS_KEY, self.spots_server, ex=10)

    def _subscribe(self) -> redis.client.PubSub:
        """The positions channel, once Redis answers: an outage (at start, or a restart
        mid-run) is waited out here, not fatal. The process used to exit on it and leave the
        positions unwatched until something restarted it."""
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(POSITIONS_CHANNEL)
                return pubsub
            except redis.RedisError:
                pubsub.close()
                log.warning("Redis unavailable; subscribing again in %.1f s", RESUBSCRIBE_S)
                if self.stopping.wait(RESUBSCRIBE_S):
                    return pubsub  # stopping: the loop below ends at once

    def run(self) -> None:
        pubsub = self._subscribe()
        self.writer.start()
        dirty, last_resync, next_status = True, 0.0, 0.0
        try:
            while not self.stopping.is_set():
                now = time.monotonic()
                if (dirty and now - last_resync >= MIN_RESYNC_GAP) \
                        or now - last_resync >= RESYNC_SECONDS:
                    try:
                        self.resync()
                        dirty = False
                    except Exception:  # database or Redis hiccup: keep the sockets, retry
                        log.exception("feed resync failed")
                    last_resync = now
                if now >= next_status:
                    for c in [c for cs in self.conns.values() for c in cs]:
                        c.check_silent(time.time())
                    try:
                        self.write_status()
                    except redis.RedisError:
                        log.warning("cannot write the feed status to Redis")
                    next_status = now + 1.0
                try:
                    if pubsub.get_message(timeout=MIN_RESYNC_GAP if dirty else 0.2) is not None:
                        dirty = True
                        # A burst of events (1,000 positions opened at once) makes one resync,
                        # not one each: a resync reads every open position from the database,
                        # and a storm of them took the GIL from the socket threads.
                        for _ in range(100_000):
                            if pubsub.get_message(timeout=0.0) is None:
                                break
                except redis.RedisError:
                    pubsub.close()
                    pubsub = self._subscribe()
                    dirty = True
        finally:
            pubsub.close()
            self.close()

    def close(self) -> None:
        for cs in self.conns.values():
            for c in cs:
                c.stop()
        self.conns.clear()
        self.writer.close()  # after the sockets: their last ticks still go out
        with contextlib.suppress(redis.RedisError):
            self.redis.delete(FEED_STATUS_KEY, FEED_SPOTS_KEY)


def run_feed() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s feed %(levelname)s %(message)s")
    feed = FeedProcess()

    def _stop(signum: int, frame: FrameType | None) -> None:
        feed.stopping.set()
        exit_within(STOP_GRACE_S)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("feed started")
    feed.run()
    log.info("feed stopped")


if __name__ == "__main__":
    run_feed()
