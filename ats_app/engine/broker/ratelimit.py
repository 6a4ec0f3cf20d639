"""Angel's per-client request limits, shared by every process through Redis.

Each (account, bucket) is a sliding window log: a sorted set of request times, checked and
appended atomically by one Lua script that reads Redis's own clock, so ten workers on one
account together stay under the limit and their clocks need not agree. A request over the
limit waits for the slot (bounded by `max_wait`) instead of failing; only when the wait
would exceed that bound does `acquire` raise `RateLimited`.

When Angel answers 403 "exceeding access rate" anyway (another installation, or Angel
counting differently), `penalize` holds the whole bucket for every process for a while.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence

import redis

from ats_app.engine.broker.errors import RateLimited

__all__ = ["ANGEL_LIMITS", "RateLimiter"]

# Published limits per client: (requests, window seconds). Order book and positions are
# separate endpoints with their own 1/s each, as Angel (and the simulator) count them.
ANGEL_LIMITS: Mapping[str, tuple[tuple[int, float], ...]] = {
    "order": ((20, 1.0), (500, 60.0), (1000, 3600.0)),
    "orderbook": ((1, 1.0),),
    "tradebook": ((1, 1.0),),
    "positions": ((1, 1.0),),
    "ltp": ((10, 1.0),),
    "quote": ((10, 1.0),),
    "login": ((1, 1.0),),
    "other": ((10, 1.0),),
    "candles": ((3, 1.0), (180, 60.0), (5000, 3600.0)),  # getCandleData (historical data)
}

# Angel counts a request when it arrives, we when we are about to send it; a request that
# waits a little longer on the wire would land in Angel's window next to the previous
# second's burst. Padding each window (10%, at most 1 s) absorbs that skew.
PAD_FRACTION = 0.1
PAD_MAX_S = 1.0

# KEYS[1] log (zset), KEYS[2] hold key; ARGV: member, then count/window_ms pairs.
# Returns 0 when the request was recorded, else the milliseconds to wait before retrying.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local hold = redis.call('PTTL', KEYS[2])
if hold > 0 then return hold end
local longest = 0
for i = 2, #ARGV, 2 do
  local w = tonumber(ARGV[i + 1])
  if w > longest then longest = w end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - longest)
local wait = 0
for i = 2, #ARGV, 2 do
  local count = tonumber(ARGV[i])
  local w = tonumber(ARGV[i + 1])
  local inside = redis.call('ZCOUNT', KEYS[1], '(' .. (now - w), '+inf')
  if inside >= count then
    -- the slot frees when the oldest of the newest `count` hits leaves the window
    local oldest = redis.call('ZREVRANGE', KEYS[1], count - 1, count - 1, 'WITHSCORES')
    local free = tonumber(oldest[2]) + w - now + 1
    if free > wait then wait = free end
  end
end
if wait > 0 then return wait end
redis.call('ZADD', KEYS[1], now, ARGV[1] .. ':' .. now)
redis.call('PEXPIRE', KEYS[1], longest)
return 0
"""


class RateLimiter:
    """Per-account limiter. `acquire(bucket)` blocks until a request may be sent."""

    def __init__(self, r: redis.Redis, account_key: str, *,
                 limits: Mapping[str, Sequence[tuple[int, float]]] = ANGEL_LIMITS,
                 max_wait: float = 5.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self._redis = r
        self._account = account_key
        self._limits = limits
        self.max_wait = max_wait
        self._sleep = sleep
        self._script = r.register_script(_ACQUIRE)

    def _keys(self, bucket: str) -> list[str]:
        base = f"ats:rl:{self._account}:{bucket}"
        return [base, base + ":hold"]

    def try_acquire(self, bucket: str) -> float:
        """Record one request if allowed now; else the seconds to wait (nothing recorded)."""
        limits = self._limits.get(bucket) or self._limits["other"]
        args: list[str | int] = [uuid.uuid4().hex]
        for count, window in limits:
            args += [count, int(window * 1000 + min(window * PAD_FRACTION, PAD_MAX_S) * 1000)]
        wait_ms = int(self._script(keys=self._keys(bucket), args=args))
        return wait_ms / 1000.0

    def acquire(self, bucket: str, max_wait: float | None = None) -> float:
        """Wait (bounded) for a slot; returns the seconds waited. Raises RateLimited when the
        next slot is further away than `max_wait` (e.g. the hourly order limit is used up)."""
        bound = self.max_wait if max_wait is None else max_wait
        waited = 0.0
        while True:
            wait = self.try_acquire(bucket)
            if wait <= 0:
                return waited
            if waited + wait > bound:
                raise RateLimited(
                    f"Angel's {bucket} rate limit for this account is used up; next slot in "
                    f"{wait:.1f} s")
            self._sleep(wait)
            waited += wait

    def penalize(self, bucket: str, seconds: float) -> None:
        """Hold the bucket for every process (after a 403 from Angel)."""
        self._redis.set(self._keys(bucket)[1], "1", px=max(1, int(seconds * 1000)))
