"""The clock: IST, and `now()` that tests running real worker processes can freeze.

`now()` is the wall clock, except that outside production `ATS_FAKE_NOW` (an ISO
datetime with offset, e.g. `2026-12-02T10:00:00+05:30`) freezes it, so tests that run real
worker processes can put the trading day wherever they need it. RQ's scheduler keeps the wall
clock: `wall_clock(at)` turns a time on our clock into the wall-clock time as far away from
now, so a run planned for 15:15 on a frozen 10:00 is due in 5 h 15 min, not at once.
"""

from __future__ import annotations

import logging
import os
import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from ats_app.engine.core.errors import ValidationError

IST = ZoneInfo("Asia/Kolkata")
FAKE_NOW_ENV = "ATS_FAKE_NOW"

log = logging.getLogger("ats.market_hours")


def ist(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("naive datetime: pass a timezone-aware time")
    return at.astimezone(IST)


def ist_stamp(at: datetime) -> str:
    """`at` as every screen shows a moment, e.g. "2026-12-06 14:32:05 IST": the zone is named
    because traders read it beside TradingView, which may show another zone; the year is there
    because order history and the audit log go back further than this year."""
    return ist(at).strftime("%Y-%m-%d %H:%M:%S IST")


def iso_ist(at: datetime) -> str:
    """`at` for machine-readable exports (CSV, JSON): ISO 8601 with its offset, in IST, e.g.
    "2026-12-06T14:32:05.123456+05:30" — unambiguous to a parser, readable as IST to a person."""
    return ist(at).isoformat()


DAY_HINT = "dd-mm-yyyy"
_DAY = re.compile(r"(\d{1,2})[-/. ](\d{1,2})[-/. ](\d{4})")
_ISO_DAY = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")


def parse_day(text: str) -> date | None:
    """A date filter as a trader in India types it, day first: 05-12-2026 (or / . as the
    separator); 2026-12-05 (year first) is unambiguous too. Empty: None. Anything else, or a
    day that does not exist (31-02-2026), raises ValueError naming the expected form."""
    t = text.strip()
    if not t:
        return None
    if m := _DAY.fullmatch(t):
        d, mo, y = (int(g) for g in m.groups())
    elif m := _ISO_DAY.fullmatch(t):
        y, mo, d = (int(g) for g in m.groups())
    else:
        raise ValueError(f"{text.strip()!r} is not a date: use {DAY_HINT}")
    try:
        return date(y, mo, d)
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a date: use {DAY_HINT}") from None


def now() -> datetime:
    """Aware UTC now; `ATS_FAKE_NOW` freezes it outside production (see module docstring)."""
    fake = os.environ.get(FAKE_NOW_ENV, "").strip()
    if fake:
        if os.environ.get("ATS_ENV", "").strip().lower() in ("prod", "production"):
            log.error("%s is ignored in production", FAKE_NOW_ENV)
        else:
            try:
                return ist(datetime.fromisoformat(fake)).astimezone(UTC)
            except ValueError as exc:
                raise ValidationError(f"{FAKE_NOW_ENV} must be an ISO datetime with an offset, "
                                      f"got {fake!r}", field=FAKE_NOW_ENV) from exc
    return datetime.now(UTC)


def wall_clock(at: datetime) -> datetime:
    """`at` (on `now()`'s clock) as a wall-clock UTC time: for RQ's scheduler, which knows
    no fake clock. The same time when the clock is not faked."""
    clock = now()
    wall = datetime.now(UTC)
    if abs(clock - wall) < timedelta(seconds=1):
        return at.astimezone(UTC)
    return wall + (at - clock)
