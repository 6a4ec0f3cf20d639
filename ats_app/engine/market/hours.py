"""NSE/NFO trading hours in Asia/Kolkata: the session, weekends and the exchange holidays.

Pure apart from reading the holiday file: `is_open(at, calendar)` answers `(True, "open")` or
`(False, reason)` for any aware datetime, so live trading, paper trading, tests and replays
all ask the same question with their own clock.

Session: 09:15:00 (inclusive) to 15:30:00 (exclusive), Monday to Friday, except the dates in
the holiday file. The pre-open auction (09:00-09:08) counts as closed: market orders are not
matched in it. `MARKET_HOURS=always` (paper only, see config) answers open at any hour.

Holidays: `ats_app/data/nse_holidays.json` ships with the code; `NSE_HOLIDAYS_FILE` points at
the operator's own copy (same format: `{"holidays": [{"date": "2026-01-26", "name": "..."}]}`).
The file is re-read when it changes, so an update needs no restart.

Clock: `now()`, `ist()` and `wall_clock()` come from `core.clock` (the fake-able clock).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

from ats_app.engine.core.clock import FAKE_NOW_ENV, IST, ist, now, wall_clock
from ats_app.engine.core.errors import ValidationError

__all__ = [
    "CLOSE",
    "DEFAULT_HOLIDAYS_FILE",
    "FAKE_NOW_ENV",
    "IST",
    "OPEN",
    "Calendar",
    "default_calendar",
    "is_open",
    "is_trading_day",
    "ist",
    "load_calendar",
    "next_trading_day",
    "now",
    "trading_day_of",
    "wall_clock",
]

OPEN = time(9, 15)
CLOSE = time(15, 30)
DEFAULT_HOLIDAYS_FILE = Path(__file__).resolve().parents[2] / "data" / "nse_holidays.json"

log = logging.getLogger("ats.market_hours")


@dataclass(frozen=True)
class Calendar:
    """Exchange holidays (date -> name). Weekends need not be listed."""

    holidays: dict[date, str] = field(default_factory=dict)
    source: str = ""

    def holiday(self, day: date) -> str | None:
        return self.holidays.get(day)


def trading_day_of(at: datetime) -> date:
    """The IST calendar date of `at` (the unit of daily limits and schedules)."""
    return ist(at).date()


def is_trading_day(day: date, calendar: Calendar) -> tuple[bool, str]:
    if day.weekday() >= 5:
        return False, f"weekend ({day:%A} {day.isoformat()})"
    name = calendar.holiday(day)
    if name:
        return False, f"exchange holiday ({name}, {day.isoformat()})"
    return True, "trading day"


def is_open(at: datetime, calendar: Calendar | None = None, mode: str = "nse") -> tuple[bool, str]:
    """Whether NSE/NFO is trading at `at`, with the reason when it is not."""
    if mode == "always":
        return True, "open (MARKET_HOURS=always)"
    calendar = calendar if calendar is not None else default_calendar()
    local = ist(at)
    trading, why = is_trading_day(local.date(), calendar)
    if not trading:
        return False, f"market closed: {why}"
    clock = local.time()
    if clock < OPEN:
        return False, f"market closed: opens at 09:15 IST (now {clock:%H:%M:%S} IST)"
    if clock >= CLOSE:
        return False, f"market closed: closed at 15:30 IST (now {clock:%H:%M:%S} IST)"
    return True, "open"


def next_open(at: datetime, calendar: Calendar | None = None) -> datetime:
    """When the market next opens at or after `at` (IST 09:15 of a trading day)."""
    calendar = calendar if calendar is not None else default_calendar()
    local = ist(at)
    day = local.date()
    if not (is_trading_day(day, calendar)[0] and local.time() < OPEN):
        day = next_trading_day(day, calendar)
    return datetime.combine(day, OPEN, IST)


def next_trading_day(after: date, calendar: Calendar) -> date:
    """The first trading day strictly after `after`."""
    day = after + timedelta(days=1)
    for _ in range(366):
        if is_trading_day(day, calendar)[0]:
            return day
        day += timedelta(days=1)
    raise ValidationError("no trading day within a year: is the holiday file sane?")


def load_calendar(path: Path) -> Calendar:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = data["holidays"] if isinstance(data, dict) else data
        holidays = {date.fromisoformat(str(r["date"])): str(r.get("name") or "holiday")
                    for r in rows}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValidationError(f"holiday file {path} is unreadable: {exc}",
                              field="NSE_HOLIDAYS_FILE") from exc
    return Calendar(holidays=holidays, source=str(path))


_cache_lock = threading.Lock()
_cache: dict[tuple[str, float], Calendar] = {}


def holidays_file() -> Path:
    given = os.environ.get("NSE_HOLIDAYS_FILE", "").strip()
    return Path(given) if given else DEFAULT_HOLIDAYS_FILE


def default_calendar() -> Calendar:
    """The holiday calendar from NSE_HOLIDAYS_FILE (or the shipped file), re-read on change."""
    path = holidays_file()
    try:
        mtime = path.stat().st_mtime
    except OSError as exc:
        raise ValidationError(f"holiday file {path} is missing", field="NSE_HOLIDAYS_FILE") from exc
    key = (str(path), mtime)
    with _cache_lock:
        cal = _cache.get(key)
        if cal is None:
            cal = load_calendar(path)
            _cache.clear()
            _cache[key] = cal
        return cal
