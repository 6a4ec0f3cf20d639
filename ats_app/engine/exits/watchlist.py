"""Which positions (and so which instruments) the monitor watches.

Loaded from the database (OPEN and EXITING positions: EXITING ones are not evaluated, but a
failed exit puts them back to OPEN and they must be guarded again), kept current by the
`ats:positions` events and a periodic resync (pub/sub is fire-and-forget: an event published
while the monitor was reconnecting is simply gone, the database is not).

The trail (peak, stop) is persisted in two places: Redis every 100 ms and the database every
second. On load the more favourable peak and the tighter stop win, so a restarted monitor
continues the same trail instead of resetting it to the entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import redis
from sqlalchemy import bindparam, update
from sqlmodel import col, select

from ats_app.engine.exits import rules as exits
from ats_app.engine.exits.tracker import Tracked
from ats_app.engine.market.tickbus import PEAKS_KEY, FeedSettings, instrument_key
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Position

ACTIVE = ("OPEN", "EXITING")


def active_positions(settings: FeedSettings | None = None) -> list[Position]:
    """OPEN and EXITING positions (of this shard, when sharded)."""
    with session_scope() as s:
        rows = list(s.exec(select(Position).where(col(Position.status).in_(ACTIVE))).all())
    if settings is None:
        return rows
    return [p for p in rows if settings.owns(instrument_key(p.exchange, p.symbol_token))]


def active_statuses(settings: FeedSettings | None = None) -> dict[int, str]:
    """id -> status of OPEN and EXITING positions (of this shard): the cheap resync query."""
    with session_scope() as s:
        rows = s.exec(
            select(Position.id, Position.status, Position.exchange, Position.symbol_token)
            .where(col(Position.status).in_(ACTIVE))
        ).all()
    return {pid: status for pid, status, exchange, token in rows
            if pid is not None
            and (settings is None or settings.owns(instrument_key(exchange, token)))}


def positions_by_id(ids: Iterable[int]) -> list[Position]:
    ids = list(ids)
    if not ids:
        return []
    with session_scope() as s:
        return list(s.exec(select(Position).where(col(Position.id).in_(ids))).all())


def tracked_from(p: Position, redis_trail: tuple[int, int | None] | None = None) -> Tracked:
    assert p.id is not None
    sign = 1 if p.side.upper() == "LONG" else -1
    peak = p.peak_price_paise or p.entry_price_paise
    stop = p.stop_paise
    if redis_trail is not None:
        r_peak, r_stop = redis_trail
        if sign * r_peak > sign * peak:
            peak = r_peak
        if r_stop is not None and (stop is None or sign * r_stop > sign * stop):
            stop = r_stop
    return Tracked(
        position_id=p.id,
        user_id=p.user_id,
        account_id=p.account_id,
        exchange=p.exchange.upper(),
        token=p.symbol_token,
        symbol=p.symbol,
        sign=sign,
        quantity=p.quantity,
        entry=p.entry_price_paise,
        initial_stop=p.initial_stop_paise,
        stop=stop,
        target=p.target_paise,
        peak=peak,
        tick=p.tick_size_paise or 5,
        rules=exits.ExitRules.from_settings(trailing_stop_pct=p.trailing_stop_pct),
        state=p.status,
        broker_stop=bool(p.broker_stop),
    )


def read_trails(r: redis.Redis, ids: Iterable[int]) -> dict[int, tuple[int, int | None]]:
    ids = list(ids)
    if not ids:
        return {}
    out: dict[int, tuple[int, int | None]] = {}
    for pid, raw in zip(ids, r.hmget(PEAKS_KEY, [str(i) for i in ids]), strict=True):
        if raw is None:
            continue
        peak, _, stop = raw.decode().partition(":")
        out[pid] = (int(peak), int(stop) if stop and stop != "None" else None)
    return out


def write_trails(r: redis.Redis, trails: dict[int, tuple[int, int | None]]) -> None:
    if trails:
        r.hset(PEAKS_KEY, mapping={str(k): f"{p}:{s}" for k, (p, s) in trails.items()})


def forget_trails(r: redis.Redis, ids: Iterable[int]) -> None:
    keys = [str(i) for i in ids]
    if keys:
        r.hdel(PEAKS_KEY, *keys)


def save_trails_to_db(trails: dict[int, tuple[int, int | None]]) -> None:
    """Persist peaks/stops; never onto a CLOSED row (the close is the final word)."""
    if not trails:
        return
    table = Position.__table__  # type: ignore[attr-defined]
    # One executemany: a thousand single UPDATEs would hold SQLite's write lock long enough
    # to delay an exit claim waiting behind it.
    stmt = (
        update(table)
        .where(table.c.id == bindparam("pid"))
        .where(table.c.status != "CLOSED")  # (IN cannot be used with executemany)
        .values(peak_price_paise=bindparam("peak"), stop_paise=bindparam("stop"))
    )
    params = [{"pid": pid, "peak": peak, "stop": stop} for pid, (peak, stop) in trails.items()]
    with session_scope() as s:
        s.connection().execute(stmt, params)


@dataclass
class Watchlist:
    """Positions by id and by instrument. Not thread-safe: the monitor's main thread owns it."""

    positions: dict[int, Tracked] = field(default_factory=dict)
    by_instrument: dict[str, list[Tracked]] = field(default_factory=dict)

    def add(self, t: Tracked) -> bool:
        """Add or replace; True when the instrument is new (subscribe to it)."""
        old = self.positions.get(t.position_id)
        if old is not None:
            self.remove(old.position_id)
        self.positions[t.position_id] = t
        group = self.by_instrument.setdefault(t.instrument, [])
        group.append(t)
        return len(group) == 1

    def remove(self, position_id: int) -> str | None:
        """Remove; returns the instrument when its last position left (unsubscribe)."""
        t = self.positions.pop(position_id, None)
        if t is None:
            return None
        group = self.by_instrument.get(t.instrument, [])
        group[:] = [x for x in group if x.position_id != position_id]
        if not group:
            self.by_instrument.pop(t.instrument, None)
            return t.instrument
        return None

    def instruments(self) -> set[str]:
        return set(self.by_instrument)

    def get(self, position_id: int) -> Tracked | None:
        return self.positions.get(position_id)
