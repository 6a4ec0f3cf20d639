"""The exit engine (`python -m ats_app.cli monitor`).

Why one module of ~490 lines: `Monitor` is one thread's state (the tracked positions, their
instruments, the timers) and its hot path (`on_tick` -> `_exit`) reads that state directly;
split across modules, the path from a tick to a sell would be harder to follow, not easier.
The rules, tracking and claims it calls are in `exits`. See `MONITOR.md` beside it.

Main thread: Redis pub/sub on the tick channels of watched instruments (`ticks:{EXCH}:{token}`)
and on `ats:positions`; each tick is applied to every OPEN position on the instrument
(`tracker.on_price`, integer fast path over the pure `exits` rules). The first tick that hits
a level marks the position EXITING locally, claims it in the database right there
(`exits.claims.claim_exits`: one winner, whatever the number of monitors or ticks; every
position the tick exits in one transaction) and enqueues its one sell job (one round trip for
all of them). Everything slow (database reads and writes, recovery, REST quotes)
runs in other threads and reports back through `inbox`, so ticks are never stuck behind them.

Stale prices: a watched instrument with no tick for `stale_seconds` is marked stale
(`ats:monitor:stale`, audit `feed.stale`); a tick older than that when it arrives is never
used for a decision (audit `monitor.stale_price_ignored`); stale instruments are priced over
REST (`rest_fallback`) so they stay guarded. Live P&L goes to `ats:live:{user}` at most 4/s per
position. Sharding: run N monitors with ATS_MONITOR_SHARDS=N and ATS_MONITOR_SHARD=0..N-1;
each watches the instruments whose crc32("EXCH:token") % N is its shard.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import threading
import time
from collections import deque
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import redis

from ats_app.engine.execution.positions import POSITIONS_CHANNEL
from ats_app.engine.exits import rules as exits
from ats_app.engine.exits.claims import ExitClaim, claim_exits, finish_pending_exits
from ats_app.engine.exits.tracker import Tracked, on_price
from ats_app.engine.exits.watchlist import (
    Watchlist,
    active_statuses,
    forget_trails,
    positions_by_id,
    read_trails,
    save_trails_to_db,
    tracked_from,
    write_trails,
)
from ats_app.engine.market.feed_sources import SourceResolver
from ats_app.engine.market.rest_fallback import RestFallback, StaleInstrument
from ats_app.engine.market.tickbus import (
    STALE_KEY,
    TICK_PREFIX,
    FeedSettings,
    decode_tick,
    instrument_key,
    instrument_of_channel,
)
from ats_app.engine.market.tickbus import tick_channel as tick_channel
from ats_app.engine.services.processes import STOP_GRACE_S, exit_within
from ats_app.engine.store import audit, live
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Position
from ats_app.engine.store.queueing import (
    enqueue_broker_stop_moves,
    enqueue_broker_stop_sync,
    enqueue_exits,
)
from ats_app.engine.store.redis_conn import MONITOR_HEARTBEAT_KEY, connect

HEARTBEAT_SECONDS = 1.0
RECOVERY_SECONDS = 30.0  # lost alerts, abandoned jobs, claimed exits without a job
RESYNC_SECONDS = 2.0  # re-read open positions (pub/sub events can be missed)
PNL_SECONDS = 0.25  # live P&L: at most 4 messages per second per position
TRAIL_REDIS_SECONDS = 0.1
TRAIL_DB_SECONDS = 1.0
BATCH = 2000  # ticks read in a row before the inbox and timers get their turn under a flood
FAULT_ENV = "ATS_MONITOR_FAULT"  # test hook: "kill_after_claim" dies by SIGKILL after a claim

log = logging.getLogger("ats.monitor")
_POSITIONS_BYTES = POSITIONS_CHANNEL.encode()

__all__ = ["Monitor", "run_monitor", "tick_channel"]


class Monitor:
    def __init__(self, r: redis.Redis | None = None, settings: FeedSettings | None = None) -> None:
        self.conn = r or connect()
        self.settings = settings or FeedSettings.from_env()
        self.watch = Watchlist()
        self.inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.ticks_seen = 0
        self.last_tick: dict[str, float] = {}
        self.watched_since: dict[str, float] = {}
        self.stale: dict[str, float] = {}
        self.stale_noted: set[str] = set()  # stale-tick audit once per episode
        self.sources: dict[str, StaleInstrument] = {}
        self.in_flight: set[int] = set()
        self.closed: set[int] = set()  # closed by event, ignored in older snapshots
        self.latencies: deque[float] = deque(maxlen=20000)  # tick at -> exit enqueued, s
        self.claim_times: deque[float] = deque(maxlen=20000)  # claim + enqueue alone, s
        self.exits_enqueued = 0
        self._trails: dict[int, tuple[int, int | None]] = {}
        self._db_trails: dict[int, tuple[int, int | None]] = {}
        self._pnl: dict[int, tuple[Tracked, int, float, str]] = {}
        self._listeners: set[int] = set()  # users with a live P&L subscriber (dashboard open)
        self._listeners_at = 0.0
        self._instrument_of: dict[bytes, str] = {}
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._resync_now = threading.Event()
        self._rest = RestFallback(self.conn, self._rest_price, interval=self.settings.rest_interval)
        self._house = threading.Thread(target=self._housekeeping, name="monitor-house",
                                       daemon=True)
        self.pubsub = self.conn.pubsub(ignore_subscribe_messages=True)

    def stop(self, *_: object) -> None:
        self.stopping.set()

    # ------------------------------------------------------------------ ticks (main thread)

    def on_tick(self, instrument: str, price: int, at: float, src: str = "ws") -> None:
        self.ticks_seen += 1
        group = self.watch.by_instrument.get(instrument)
        if not group:
            return
        now = time.time()
        if src != "rest":
            if now - at > self.settings.stale_seconds:
                self._stale_price(instrument, price, now - at)
                return
            self.last_tick[instrument] = at
            if instrument in self.stale:
                self._fresh(instrument)
        moment = datetime.fromtimestamp(now, UTC)
        exiting: list[tuple[Tracked, exits.ExitDecision]] = []
        for t in group:
            changed, decision = on_price(t, price, moment)
            if changed:
                self._trails[t.position_id] = (t.peak, t.stop)
            if decision is not None:
                exiting.append((t, decision))
            self._pnl[t.position_id] = (t, price, now, src)
        if exiting:
            self._exit(exiting, src, at)

    def _exit(self, exiting: list[tuple[Tracked, exits.ExitDecision]], src: str,
              at: float) -> None:
        # Claimed and enqueued right here, on the main thread: ~1 ms alone, and a hand-off to
        # another thread would wait for the GIL behind the tick loop for longer than that.
        # Every position this tick exits goes in one claim transaction and one enqueue round
        # trip: the last of many positions on one instrument waits for no one else's commit.
        started = time.time()
        for t, _ in exiting:
            t.state = "EXITING"  # later ticks skip it
            self.in_flight.add(t.position_id)  # recovery leaves it alone until the job exists
        try:
            won = set(claim_exits([ExitClaim(t.position_id, d, t.user_id, (t.peak, t.stop))
                                   for t, d in exiting], source=src))
            if won and os.environ.get(FAULT_ENV) == "kill_after_claim":
                os.kill(os.getpid(), signal.SIGKILL)  # the recovery test's crash point
            sells = [(t, d) for t, d in exiting if t.position_id in won]
            if sells:
                enqueue_exits([(t.position_id, d.reason.value) for t, d in sells], self.conn)
                done = time.time()
                for t, d in sells:
                    self.latencies.append(done - at)
                    self.claim_times.append(done - started)
                    self.exits_enqueued += 1
                    log.info("position %s: %s at %s (level %s); sell enqueued", t.position_id,
                             d.reason.value, d.observed_price, d.trigger_price)
        except Exception:
            # Unknown outcome: re-arm so the next tick tries again (a claim that did commit
            # makes that attempt lose, and recovery enqueues its sell).
            log.exception("claiming the exits of positions %s failed",
                          [t.position_id for t, _ in exiting])
            for t, _ in exiting:
                t.state = "OPEN"
        finally:
            for t, _ in exiting:
                self.in_flight.discard(t.position_id)

    def _stale_price(self, instrument: str, price: int, age: float) -> None:
        self._mark_stale(instrument, time.time())
        if instrument not in self.stale_noted:
            self.stale_noted.add(instrument)
            for t in self.watch.by_instrument.get(instrument, []):
                self._audit("monitor.stale_price_ignored", t.user_id, t.position_id,
                            instrument=instrument, price_paise=price, age_s=round(age, 3))

    def _mark_stale(self, instrument: str, now: float) -> None:
        if instrument in self.stale:
            return
        self.stale[instrument] = now
        guarded = instrument in self.sources
        self._redis_quiet(lambda: self.conn.hset(
            STALE_KEY, instrument, json.dumps({"since": now, "rest": guarded})))
        for t in self.watch.by_instrument.get(instrument, []):
            self._audit("feed.stale", t.user_id, t.position_id, instrument=instrument,
                        guarded_by_rest=guarded)
        self._notify_users(instrument, "feed_stale", detail=f"{instrument}: " + (
            "exits use REST prices meanwhile" if guarded else "no REST fallback"))
        self._update_rest()

    def _fresh(self, instrument: str) -> None:
        self.stale.pop(instrument, None)
        self.stale_noted.discard(instrument)
        self._redis_quiet(lambda: self.conn.hdel(STALE_KEY, instrument))
        for t in self.watch.by_instrument.get(instrument, []):
            self._audit("feed.fresh", t.user_id, t.position_id, instrument=instrument)
        self._notify_users(instrument, "feed_reconnected", detail=f"{instrument}: ticks again")
        self._update_rest()

    def _notify_users(self, instrument: str, event: str, **data: Any) -> None:
        """Once per user holding the instrument, off the tick path (the job thread); notify's
        own rate limit keeps a flapping feed from flooding anyone."""
        from ats_app.engine.notify import notices

        for uid in {t.user_id for t in self.watch.by_instrument.get(instrument, [])}:
            self._jobs.put(lambda uid=uid: notices.emit(uid, event, feed=instrument, **data))

    def _update_rest(self) -> None:
        self._rest.update([self.sources[i] for i in self.stale if i in self.sources])

    def _rest_price(self, instrument: str, price: int, at: float) -> None:
        self.inbox.put(("rest", instrument, price, at))  # called from a REST thread

    # ------------------------------------------------------------------ watchlist

    def _apply_sync(self, statuses: dict[int, str],
                    full: list[tuple[Position, tuple[int, int | None] | None]],
                    sources: dict[str, StaleInstrument]) -> None:
        self.sources.update(sources)
        self.closed &= set(statuses)  # a closed id no longer in snapshots needs no ignoring
        for pid in [pid for pid in self.watch.positions if pid not in statuses]:
            if pid not in self.in_flight:
                self._remove(pid)
        for p, trail in full:
            if p.id is not None and p.id not in self.closed and self.watch.get(p.id) is None:
                self._add(tracked_from(p, trail))
        for pid, status in statuses.items():
            cur = self.watch.get(pid)
            if cur is not None and pid not in self.in_flight and pid not in self.closed:
                cur.state = status  # EXITING by someone else, or OPEN again after a failure

    def _add(self, t: Tracked) -> None:
        if self.watch.add(t):
            self.watched_since[t.instrument] = time.time()
            self.pubsub.subscribe(TICK_PREFIX + t.instrument)

    def _remove(self, pid: int) -> None:
        gone = self.watch.remove(pid)
        self._trails.pop(pid, None)
        self._pnl.pop(pid, None)
        self._redis_quiet(lambda: forget_trails(self.conn, [pid]))
        if gone is not None:
            self.pubsub.unsubscribe(TICK_PREFIX + gone)
            for d in (self.last_tick, self.watched_since):
                d.pop(gone, None)
            if gone in self.stale:
                self.stale.pop(gone)
                self._redis_quiet(lambda: self.conn.hdel(STALE_KEY, gone))
                self._update_rest()

    def _on_position_event(self, data: bytes | str) -> None:
        try:
            event = json.loads(data)
        except ValueError:
            return
        if event.get("event") == "closed" and event.get("position_id") is not None:
            pid = int(event["position_id"])
            self.closed.add(pid)
            self.in_flight.discard(pid)
            self._remove(pid)
        else:
            self._resync_now.set()

    # ------------------------------------------------------------------ main loop

    def _dispatch(self, msg: dict[str, Any]) -> None:
        self._on_message(msg["channel"], msg["data"])

    def _on_message(self, channel: bytes, data: bytes) -> None:
        if channel == _POSITIONS_BYTES:
            self._on_position_event(data)
            return
        try:
            price, at, src = decode_tick(data)
        except ValueError:
            return
        instrument = self._instrument_of.get(channel)
        if instrument is None:
            instrument = self._instrument_of[channel] = instrument_of_channel(channel)
        self.on_tick(instrument, price, at, src)

    def _drain_received(self, limit: int) -> None:
        """Up to `limit` messages already received, read off the pub/sub connection directly:
        redis-py's get_message costs ~3 us a message (a third of a tick's whole cost at the
        monitor's rate), this ~1 us. Subscribe confirmations go through the PubSub object so
        its own record of the subscriptions stays right."""
        conn = self.pubsub.connection
        if conn is None:
            return
        for _ in range(limit):
            if not conn.can_read(timeout=0):
                return
            reply = conn.read_response()
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
                self._on_message(reply[1], reply[2])
            else:
                self.pubsub.handle_message(reply, ignore_subscribe_messages=True)

    def _drain_inbox(self) -> None:
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return
            kind = item[0]
            if kind == "rest":
                self.on_tick(item[1], item[2], item[3], "rest")
            elif kind == "sync":
                self._apply_sync(item[1], item[2], item[3])

    def _periodic(self, now: float, due: dict[str, float]) -> None:
        if now >= due["trail"] and self._trails:
            trails, self._trails = self._trails, {}
            self._redis_quiet(lambda: write_trails(self.conn, trails))
            self._db_trails.update(trails)
            due["trail"] = now + TRAIL_REDIS_SECONDS
        if now >= due["db"]:
            if self._db_trails:
                trails, self._db_trails = self._db_trails, {}
                self._jobs.put(lambda: save_trails_to_db(trails))
                self._move_broker_stops(trails)
            due["db"] = now + TRAIL_DB_SECONDS
        if now >= due["pnl"]:
            self._flush_pnl()
            wall = time.time()
            for instrument, since in self.watched_since.items():
                if wall - max(since, self.last_tick.get(instrument, 0.0)) \
                        > self.settings.stale_seconds:
                    self._mark_stale(instrument, wall)
            due["pnl"] = now + PNL_SECONDS
        if now >= due["beat"]:
            self._redis_quiet(self.heartbeat)
            due["beat"] = now + HEARTBEAT_SECONDS

    def _move_broker_stops(self, trails: dict[int, tuple[int, int | None]]) -> None:
        """A trail that rose moves the position's stop resting at the broker: at most once a
        second per position (this flush's pace), and only up (the job checks by a tick)."""
        moves = []
        for pid, (_, stop) in trails.items():
            t = self.watch.positions.get(pid)
            if stop is not None and t is not None and t.broker_stop and t.state == "OPEN":
                moves.append((pid, stop))
        if moves:
            self._jobs.put(lambda: enqueue_broker_stop_moves(moves, self.conn))

    def _flush_pnl(self) -> None:
        if not self._pnl:
            return
        pending, self._pnl = self._pnl, {}
        now = time.monotonic()
        if now >= self._listeners_at:
            # Only users with the dashboard open get P&L: asked of Redis once a second, so
            # a thousand positions nobody watches cost nothing.
            self._listeners_at = now + 1.0
            users = {t.user_id for t, *_ in pending.values()}
            channels = [live.channel(u) for u in users]
            try:
                counts = dict(self.conn.pubsub_numsub(*channels)) if channels else {}
            except redis.RedisError:
                counts = {}
            self._listeners = {u for u in users if counts.get(live.channel(u).encode(), 0)}
        pipe = self.conn.pipeline(transaction=False)
        for pid, (t, price, at, src) in pending.items():
            if t.user_id not in self._listeners:
                continue
            pipe.publish(live.channel(t.user_id), json.dumps({
                "type": "pnl", "position_id": pid, "ltp": f"{price / 100:.2f}",
                "pnl": f"{t.pnl_paise(price) / 100:.2f}",
                "stop": None if t.stop is None else f"{t.stop / 100:.2f}",
                "peak": f"{t.peak / 100:.2f}", "at": at, "source": src,
                "stale": t.instrument in self.stale}))
        if len(pipe):
            self._redis_quiet(pipe.execute)

    def heartbeat(self) -> None:
        beat = {"at": time.time(), "pid": os.getpid(), "ticks_seen": self.ticks_seen,
                "positions": len(self.watch.positions),
                "instruments": len(self.watch.by_instrument),
                "stale": len(self.stale), "shard": self.settings.shard,
                "shards": self.settings.shards, "exits_enqueued": self.exits_enqueued}
        self.conn.set(MONITOR_HEARTBEAT_KEY, json.dumps(beat), ex=10)

    def run(self) -> None:
        self.pubsub.subscribe(POSITIONS_CHANNEL)
        self._house.start()
        due = dict.fromkeys(("trail", "db", "pnl", "beat"), 0.0)
        try:
            while not self.stopping.is_set():
                try:
                    # The wait (and redis-py's health checks and reconnects) through
                    # get_message; then what has arrived meanwhile, straight off the socket.
                    msg = self.pubsub.get_message(timeout=0.02)
                    if msg is not None:
                        self._dispatch(msg)
                    self._drain_received(BATCH)
                except redis.RedisError:
                    log.warning("Redis pub/sub lost; reconnecting")
                    time.sleep(0.5)
                self._drain_inbox()
                self._periodic(time.monotonic(), due)
        finally:
            self.close()

    def close(self) -> None:
        self.stopping.set()
        self._rest.stop()
        if self._house.is_alive():
            self._house.join(10)
        self._redis_quiet(lambda: self.conn.delete(MONITOR_HEARTBEAT_KEY))
        self.pubsub.close()

    # ------------------------------------------------------------------ side threads

    def _audit(self, action: str, user_id: int, pid: int, **detail: Any) -> None:
        self._jobs.put(lambda: audit.record_now(action, user_id=user_id, subject=str(pid),
                                                **detail))

    def _redis_quiet(self, fn: Any) -> None:
        try:
            fn()
        except redis.RedisError as exc:
            log.warning("Redis write failed: %s", exc)

    def _load(self, resolver: SourceResolver, known: set[int]) -> set[int]:
        """Statuses of every active position; full rows (and trails) only for new ones."""
        statuses = active_statuses(self.settings)
        rows = positions_by_id(set(statuses) - known)
        trails = read_trails(self.conn, [p.id for p in rows if p.id is not None])
        sources: dict[str, StaleInstrument] = {}
        with session_scope() as s:
            for p in rows:
                key = instrument_key(p.exchange, p.symbol_token)
                if key in sources or key in self.sources:
                    continue
                creds = resolver.for_position(s, p)
                if creds is not None:
                    sources[key] = StaleInstrument(key, p.exchange.upper(), p.symbol_token,
                                                   p.symbol, p.tick_size_paise or 5, creds)
        full = [(p, trails.get(p.id)) for p in rows if p.id is not None]
        self.inbox.put(("sync", statuses, full, sources))
        return set(statuses)

    def _recover(self, owned: set[int]) -> None:
        if self.settings.shard == 0:  # alert recovery is global: one monitor does it
            from ats_app.engine.execution.recovery import (
                cleanup_abandoned_jobs,
                requeue_lost_alerts,
            )

            cleanup_abandoned_jobs(self.conn)
            requeue_lost_alerts(self.conn)
            enqueue_broker_stop_sync(self.conn)  # stops that filled while we were down
        finish_pending_exits(self.conn, owned=owned, busy=self.in_flight)

    def _housekeeping(self) -> None:
        resolver = SourceResolver()
        next_sync = next_recovery = 0.0
        owned: set[int] = set()
        while not self.stopping.is_set():
            self._resync_now.wait(0.2)
            now = time.monotonic()
            try:
                while True:
                    try:
                        self._jobs.get_nowait()()
                    except queue.Empty:
                        break
                if self._resync_now.is_set() or now >= next_sync:
                    self._resync_now.clear()
                    owned = self._load(resolver, owned)
                    next_sync = now + RESYNC_SECONDS
                if now >= next_recovery:
                    self._recover(owned)
                    next_recovery = now + RECOVERY_SECONDS
            except Exception:  # keep guarding prices whatever happens here; retry soon
                log.exception("monitor housekeeping failed")
                time.sleep(0.5)


def run_monitor() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s monitor %(levelname)s %(message)s")
    monitor = Monitor()

    def _stop(signum: int, frame: FrameType | None) -> None:
        monitor.stop()
        exit_within(STOP_GRACE_S)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("monitor started (shard %d of %d)", monitor.settings.shard, monitor.settings.shards)
    monitor.run()
    log.info("monitor stopped")


if __name__ == "__main__":
    run_monitor()
