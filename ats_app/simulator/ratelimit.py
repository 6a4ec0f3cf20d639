"""Sliding-window rate limiter matching Angel's per-client request limits."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence


class SlidingWindowLimiter:
    """Allows a request when every (count, window) limit still has room for ``key``.

    Refused requests are not recorded: Angel counts what it serves, and a client that keeps
    retrying too fast would otherwise lock itself out for the whole hour window.
    """

    def __init__(self, limits: Sequence[tuple[int, float]]) -> None:
        self._limits = sorted(limits, key=lambda lim: lim[1])
        self._longest = max((w for _, w in self._limits), default=0.0)
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str, now: float) -> bool:
        if not self._limits:
            return True
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self._longest:
            hits.popleft()
        for count, window in self._limits:
            # Hits are time-ordered, so the ones inside the window are the newest ones.
            for inside, t in enumerate(reversed(hits), start=1):
                if t <= now - window:
                    break
                if inside >= count:
                    return False
        hits.append(now)
        return True

    def reset(self) -> None:
        self._hits.clear()
