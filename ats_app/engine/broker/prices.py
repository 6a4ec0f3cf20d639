"""Latest prices: the feed's ticks in Redis, and where paper trading gets its prices.

Redis key per instrument: `ats:ltp:{exchange}:{symboltoken}` (e.g. `ats:ltp:NFO:43650`),
a JSON object with decimal strings and the tick's time in epoch seconds:

    {"ltp": "102.35", "bid": "102.30", "ask": "102.40", "at": 1764061200.25}

`bid`/`ask` are null when the feed mode carries no depth (LTP mode). The market-data process
writes it with `write_tick` on every tick (the key expires after `TICK_TTL_S` so a dead feed
leaves no stale prices behind); readers use `read_tick`, which also refuses ticks older than
`max_age` seconds. Market data needs no static IP, so any account's feed may write here.

`PriceSource` is what paper trading needs: `quote(contract) -> Quote` or `PriceUnavailable`.
`RedisPriceSource` reads the feed; `BrokerPriceSource` asks a broker (e.g. `AngelBroker`'s
quote, which needs a login); `FallbackPriceSource` tries them in order.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

import redis

from ats_app.engine.broker.base import Contract, Quote
from ats_app.engine.broker.errors import BrokerDown, BrokerError

__all__ = [
    "TICK_TTL_S",
    "BrokerPriceSource",
    "FallbackPriceSource",
    "PriceSource",
    "PriceUnavailable",
    "RedisPriceSource",
    "SharedQuoteCache",
    "ltp_key",
    "ltp_payload_paise",
    "read_tick",
    "write_tick",
]

TICK_TTL_S = 300
DEFAULT_MAX_AGE_S = 10.0


class PriceUnavailable(BrokerDown):
    """No usable price for the instrument right now (no tick, stale tick, quote failed)."""


def ltp_key(exchange: str, symboltoken: str) -> str:
    return f"ats:ltp:{exchange.upper()}:{symboltoken}"


def _text(value: Decimal | float | str | None) -> str | None:
    return None if value is None else str(Decimal(str(value)))


def write_tick(r: redis.Redis, exchange: str, symboltoken: str, ltp: Decimal | float | str, *,
               bid: Decimal | float | str | None = None, ask: Decimal | float | str | None = None,
               at: float | None = None, ttl: int = TICK_TTL_S) -> None:
    """Store the latest tick (the feed calls this; prices in rupees, not paise)."""
    payload = {"ltp": _text(ltp), "bid": _text(bid), "ask": _text(ask),
               "at": time.time() if at is None else float(at)}
    r.set(ltp_key(exchange, symboltoken), json.dumps(payload), ex=ttl)


def ltp_payload_paise(ltp_paise: int, at: float) -> str:
    """`write_tick`'s JSON for an LTP-only tick in paise, built without Decimal or json.dumps
    (the feed writes thousands a second); `read_tick` reads both the same."""
    whole, frac = divmod(int(ltp_paise), 100)
    at = float(at)
    if not math.isfinite(at):
        raise ValueError(f"tick time must be finite, got {at!r}")
    return f'{{"ltp": "{whole}.{frac:02d}", "bid": null, "ask": null, "at": {at!r}}}'


def _dec(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    d = Decimal(str(value))
    return d if d.is_finite() and d > 0 else None


def read_tick(r: redis.Redis, exchange: str, symboltoken: str, *,
              max_age: float | None = DEFAULT_MAX_AGE_S,
              now: Callable[[], float] = time.time) -> Quote | None:
    """The latest tick as a Quote, or None when there is none, it is unreadable, or it is
    older than `max_age` seconds (None: any age)."""
    return _parse(r.get(ltp_key(exchange, symboltoken)), exchange, symboltoken, max_age, now)


def _parse(raw: bytes | str | None, exchange: str, symboltoken: str, max_age: float | None,
           now: Callable[[], float]) -> Quote | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        ltp = _dec(data["ltp"])
        at = float(data["at"])
        bid, ask = _dec(data.get("bid")), _dec(data.get("ask"))
    except (ValueError, KeyError, TypeError, ArithmeticError):
        return None
    if ltp is None or (max_age is not None and now() - at > max_age):
        return None
    return Quote(exchange=exchange.upper(), symboltoken=symboltoken, ltp=ltp, bid=bid, ask=ask,
                 at=datetime.fromtimestamp(at, UTC))


@runtime_checkable
class PriceSource(Protocol):
    def quote(self, contract: Contract) -> Quote:
        """The current price of `contract`; raises PriceUnavailable (or another BrokerError)."""
        ...


class RedisPriceSource:
    """Ticks the feed wrote to Redis, if fresh."""

    def __init__(self, r: redis.Redis, *, max_age: float = DEFAULT_MAX_AGE_S) -> None:
        self._redis = r
        self.max_age = max_age

    def quote(self, contract: Contract) -> Quote:
        q = read_tick(self._redis, contract.exchange, contract.symboltoken, max_age=self.max_age)
        if q is None:
            raise PriceUnavailable(f"no fresh tick for {contract.exchange}:"
                                   f"{contract.tradingsymbol} in Redis")
        return q


class BrokerPriceSource:
    """A broker's own quote (anything with `quote(contract) -> Quote`)."""

    def __init__(self, broker: PriceSource) -> None:
        self._broker = broker

    def quote(self, contract: Contract) -> Quote:
        return self._broker.quote(contract)


class FallbackPriceSource:
    """The first source that has a price; PriceUnavailable naming every failure otherwise."""

    def __init__(self, *sources: PriceSource) -> None:
        self._sources = sources

    def quote(self, contract: Contract) -> Quote:
        failures: list[str] = []
        for source in self._sources:
            try:
                return source.quote(contract)
            except BrokerError as exc:
                failures.append(str(exc))
        raise PriceUnavailable(f"no price for {contract.exchange}:{contract.tradingsymbol}: "
                               + "; ".join(failures or ["no price source configured"]))


QUOTE_CACHE_S = 1.0


class SharedQuoteCache:
    """A source's quotes shared by every process for `max_age` seconds.

    Angel allows 10 quote requests a second per client: a burst of alerts on one instrument
    (several links, one signal) would otherwise queue behind the limit, one request each.
    `scope` names the price server (quotes from the simulator and from Angel never mix).
    """

    def __init__(self, r: redis.Redis, inner: PriceSource, scope: str, *,
                 max_age: float = QUOTE_CACHE_S, now: Callable[[], float] = time.time) -> None:
        self._redis = r
        self._inner = inner
        self._scope = scope
        self.max_age = max_age
        self._now = now

    def _key(self, contract: Contract) -> str:
        return f"ats:quote:{self._scope}:{contract.exchange.upper()}:{contract.symboltoken}"

    def quote(self, contract: Contract) -> Quote:
        key = self._key(contract)
        cached = _parse(self._redis.get(key), contract.exchange, contract.symboltoken,
                        self.max_age, self._now)
        if cached is not None:
            return cached
        q = self._inner.quote(contract)
        # "at" is when we asked (what freshness is about), not the exchange's last-trade time.
        payload = {"ltp": _text(q.ltp), "bid": _text(q.bid), "ask": _text(q.ask),
                   "at": self._now()}
        self._redis.set(key, json.dumps(payload), px=max(1, int(self.max_age * 1000)))
        return q
