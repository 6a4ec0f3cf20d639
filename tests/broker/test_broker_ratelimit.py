"""The Redis rate limiter: shared across instances, waits instead of failing, bounded."""

from __future__ import annotations

import time

import pytest
import redis

from ats_app.engine.broker.errors import RateLimited
from ats_app.engine.broker.ratelimit import RateLimiter

LIMITS = {"x": ((3, 0.4),), "other": ((100, 1.0),)}


def test_over_the_limit_waits_for_the_window_across_processes(rds: redis.Redis) -> None:
    # A 1 s window (1.1 s padded): the three free acquires cannot outlast it on a slow machine.
    limits = {"x": ((3, 1.0),), "other": ((100, 1.0),)}
    a = RateLimiter(rds, "acct9", limits=limits)
    b = RateLimiter(rds, "acct9", limits=limits)  # another worker, same account
    started = time.monotonic()  # before the first hit: the slot frees 1.1 s after it
    assert [a.acquire("x"), b.acquire("x"), a.acquire("x")] == [0.0, 0.0, 0.0]
    assert b.acquire("x") > 0
    assert 1.0 <= time.monotonic() - started < 2.5  # the padded window, not much more


def test_accounts_and_buckets_are_separate(rds: redis.Redis) -> None:
    # A 60 s window, so the used-up bucket cannot free up again before the last check.
    limits = {"x": ((3, 60.0),), "other": ((100, 1.0),)}
    a = RateLimiter(rds, "acct1", limits=limits)
    for _ in range(3):
        a.acquire("x")
    assert RateLimiter(rds, "acct2", limits=limits).try_acquire("x") == 0
    assert a.try_acquire("other") == 0
    assert a.try_acquire("x") > 0


def test_wait_beyond_the_bound_raises_and_records_nothing(rds: redis.Redis) -> None:
    slow = {"x": ((1, 60.0),), "other": ((1, 1.0),)}
    lim = RateLimiter(rds, "acct3", limits=slow, max_wait=0.2)
    lim.acquire("x")
    with pytest.raises(RateLimited, match="used up"):
        lim.acquire("x")
    assert rds.zcard("ats:rl:acct3:x") == 1


def test_penalty_holds_the_bucket_for_everyone(rds: redis.Redis) -> None:
    a = RateLimiter(rds, "acct4", limits=LIMITS)
    a.penalize("x", 5.0)
    wait = RateLimiter(rds, "acct4", limits=LIMITS).try_acquire("x")
    assert 4.0 < wait <= 5.0  # the hold's remaining time, not the 0.44 s window
