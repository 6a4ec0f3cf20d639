"""Simulated wall clock: real time by default, or a settable time that keeps flowing."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

IST = timezone(timedelta(hours=5, minutes=30), "IST")


class Clock:
    """``set(at)`` makes ``now()`` return ``at`` plus the real time elapsed since the call.

    Flowing (rather than frozen) time keeps token expiry, order timestamps and feed timestamps
    moving the way they would in a real session that starts at the chosen instant.
    """

    def __init__(self) -> None:
        self._offset = 0.0

    def set(self, at: datetime | None) -> None:
        self._offset = 0.0 if at is None else at.timestamp() - time.time()

    @property
    def is_real(self) -> bool:
        return self._offset == 0.0

    def epoch(self) -> float:
        return time.time() + self._offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.epoch(), IST)


def nse_open(at: datetime) -> bool:
    """True during the NSE continuous session, 09:15-15:30 IST on weekdays (holidays ignored)."""
    local = at.astimezone(IST)
    if local.weekday() >= 5:
        return False
    minutes = local.hour * 60 + local.minute
    return 9 * 60 + 15 <= minutes < 15 * 60 + 30


def angel_time(at: datetime) -> str:
    """Angel's order-book timestamp format, e.g. ``25-Nov-2026 10:00:01``."""
    return at.astimezone(IST).strftime("%d-%b-%Y %H:%M:%S")
