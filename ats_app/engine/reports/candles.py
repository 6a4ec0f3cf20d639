"""1-minute candles from the broker (`getCandleData`), cached in the database by IST day.

Reading goes cache first: only days not yet stored are asked of the broker, grouped into as
few requests as Angel's per-request range allows (`PAGE_DAYS`), each through the account's
rate limiter (the `candles` bucket). A day is stored once it is over (its candles are final),
with no candles too (a holiday, a contract Angel no longer serves), so a second replay over
the same trades makes no broker call at all. Today's candles are fetched but not stored.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import sqlalchemy as sa
from sqlmodel import Session, col, select

from ats_app.engine.broker.errors import OrderRejected, RateLimited
from ats_app.engine.core import clock
from ats_app.engine.core.clock import IST
from ats_app.engine.core.money import to_paise
from ats_app.engine.reports.replay_rules import Candle
from ats_app.engine.store.models import CandleDay

__all__ = ["INTERVAL", "PAGE_DAYS", "CandleSource", "days_of", "load_days", "pages"]

log = logging.getLogger("ats.reports.candles")

INTERVAL = "ONE_MINUTE"
# Angel serves at most 30 days of 1-minute candles per request (and caps the rows of one
# answer); 20 calendar days hold at most 15 sessions x 375 minutes = 5,625 rows.
PAGE_DAYS = 20
RATE_LIMIT_WAITS = 16  # 1, 2, 3, 4, then 5 s: a job may wait out Angel's per-minute limit
_HUNDRED = Decimal(100)


class CandleSource(Protocol):
    def candle_data(self, exchange: str, symboltoken: str, interval: str, fromdate: str,
                    todate: str) -> list[list[Any]]: ...


def days_of(start: datetime, end: datetime) -> list[date]:
    """The IST days from `start` to `end`, both included."""
    first, last = clock.ist(start).date(), clock.ist(end).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def pages(days: Iterable[date], span: int = PAGE_DAYS) -> list[tuple[date, date]]:
    """Sorted days grouped into requests of at most `span` calendar days each."""
    out: list[tuple[date, date]] = []
    for d in sorted(set(days)):
        if out and (d - out[-1][0]).days < span:
            out[-1] = (out[-1][0], d)
        else:
            out.append((d, d))
    return out


def _encode(rows: Sequence[list[Any]]) -> dict[date, list[list[int]]]:
    """Angel's rows by IST day, each [minute of day, open, high, low, close] in paise."""
    by_day: dict[date, list[list[int]]] = {}
    for row in rows:
        at = clock.ist(datetime.fromisoformat(str(row[0])))
        prices = [to_paise(Decimal(str(v))) or 0 for v in row[1:5]]
        by_day.setdefault(at.date(), []).append([at.hour * 60 + at.minute, *prices])
    for day_rows in by_day.values():
        day_rows.sort()
    return by_day


def _decode(day: date, rows: Sequence[Sequence[int]]) -> list[Candle]:
    midnight = datetime(day.year, day.month, day.day, tzinfo=IST)
    return [Candle(midnight + timedelta(minutes=m), Decimal(o) / _HUNDRED,
                   Decimal(h) / _HUNDRED, Decimal(lo) / _HUNDRED, Decimal(c) / _HUNDRED)
            for m, o, h, lo, c in rows]


def _fetch(broker: CandleSource, exchange: str, token: str, first: date, last: date,
           sleep: Callable[[float], None]) -> list[list[Any]]:
    for attempt in range(RATE_LIMIT_WAITS + 1):
        try:
            return broker.candle_data(exchange, token, INTERVAL, f"{first:%Y-%m-%d} 00:00",
                                      f"{last:%Y-%m-%d} 23:59")
        except RateLimited:
            if attempt == RATE_LIMIT_WAITS:
                raise
            sleep(min(5.0, 1.0 + attempt))  # a replay waits for Angel's window, not fails
    return []


def _store(session: Session, source: str, exchange: str, token: str,
           days: dict[date, list[list[int]]]) -> None:
    for day, rows in days.items():
        try:
            with session.begin_nested():  # another run may have stored it meanwhile
                session.add(CandleDay(source=source, exchange=exchange, symbol_token=token,
                                      interval=INTERVAL, day=day.isoformat(),
                                      candles=json.dumps(rows, separators=(",", ":"))))
        except sa.exc.IntegrityError:
            continue


def load_days(session: Session, broker: CandleSource | None, source: str, exchange: str,
              token: str, days: Iterable[date], *, now: datetime | None = None,
              on_page: Callable[[int, int], None] | None = None,
              sleep: Callable[[float], None] = time.sleep) -> dict[date, list[Candle]]:
    """Candles of `days` for one instrument, cached ones from the database, the rest from
    `broker` (None: cache only). `on_page(done, total)` after each broker request."""
    wanted = sorted(set(days))
    today = clock.ist(now or clock.now()).date()
    out: dict[date, list[Candle]] = {}
    if not wanted:
        return out
    keys = [d.isoformat() for d in wanted]
    stored = session.exec(
        select(CandleDay.day, CandleDay.candles)
        .where(CandleDay.source == source, CandleDay.exchange == exchange,
               CandleDay.symbol_token == token, CandleDay.interval == INTERVAL)
        .where(col(CandleDay.day).in_(keys))
    ).all()
    for day_text, blob in stored:
        day = date.fromisoformat(day_text)
        out[day] = _decode(day, json.loads(blob))
    missing = [d for d in wanted if d not in out and d <= today]
    todo = pages(missing)
    for done, (first, last) in enumerate(todo, start=1):
        if broker is None:
            break
        span = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        try:
            by_day = _encode(_fetch(broker, exchange, token, first, last, sleep))
        except OrderRejected as exc:
            # Refused for good (say, a contract Angel no longer serves): these trades have no
            # candles and exit on their signal; nothing is cached, so a later run asks again.
            log.warning("candles %s %s %s..%s refused: %s", exchange, token, first, last, exc)
            by_day = {}
        else:
            final = {d: by_day.get(d, []) for d in span if d < today}
            _store(session, source, exchange, token, final)
            session.commit()
        for d in span:
            out[d] = _decode(d, by_day.get(d, []))
        if on_page is not None:
            on_page(done, len(todo))
    return out
