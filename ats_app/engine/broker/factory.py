"""The one place that decides which Broker a webhook link gets. No `if paper` elsewhere.

- live: an `AngelBroker` for the account (required), through the account's egress proxy or
  from its local source address;
- paper with an account: a `PaperBroker` (scope `u{user}:a{account}`) priced by the feed's
  ticks in Redis, falling back to that account's Angel quote (market data needs no static
  IP, and no order route is ever called);
- paper without an account: a `PaperBroker` (scope `u{user}`) priced by the feed's ticks,
  falling back to the local SmartAPI simulator's quote when the simulator is enabled.

`ATS_IP_ECHO_URL` (default https://api.ipify.org; empty disables) is the plain-text IP-echo
service used to report the address an account's orders leave from.
"""

from __future__ import annotations

import os
import threading

import redis
from sqlmodel import Session

from ats_app.engine.broker.angel import DEFAULT_IP_ECHO_URL, AngelBroker
from ats_app.engine.broker.base import Broker, ConnectionReport
from ats_app.engine.broker.paper import PaperBroker
from ats_app.engine.broker.prices import (
    DEFAULT_MAX_AGE_S,
    BrokerPriceSource,
    FallbackPriceSource,
    PriceSource,
    RedisPriceSource,
    SharedQuoteCache,
)
from ats_app.engine.broker.ratelimit import RateLimiter
from ats_app.engine.broker.session import AngelSession
from ats_app.engine.core.config import settings
from ats_app.engine.core.errors import ValidationError
from ats_app.engine.store.redis_conn import connect
from ats_app.engine.tenants import accounts
from ats_app.engine.tenants.accounts import Credentials

__all__ = [
    "angel_broker",
    "broker_for",
    "limiter_key",
    "live_prices",
    "simulator_credentials",
    "test_connection",
]

SIMULATOR_ACCOUNT_ID = 0  # not a database id: the demo account of the local simulator


def _ip_echo_url() -> str | None:
    url = os.environ.get("ATS_IP_ECHO_URL")
    if url is None:
        return DEFAULT_IP_ECHO_URL
    return url.strip() or None


def limiter_key(creds: Credentials) -> str:
    """Angel counts requests per client code, so two account rows for one client code share them."""
    return f"client:{creds.client_id.upper()}"


def angel_broker(creds: Credentials, r: redis.Redis, *, declared_ip: str | None = None,
                 timeout: float = 7.0) -> AngelBroker:
    """An AngelBroker for decrypted credentials (rate limits and session shared via Redis)."""
    limiter = RateLimiter(r, limiter_key(creds))
    session = AngelSession(creds, r, limiter=limiter, timeout=timeout)
    return AngelBroker(session, limiter, ip_echo_url=_ip_echo_url(), declared_ip=declared_ip)


def simulator_credentials() -> Credentials | None:
    """The local simulator's demo account, when the simulator is part of this installation."""
    s = settings()
    if not s.simulator_enabled:
        return None
    from ats_app.simulator.config import demo_account

    demo = demo_account()
    return Credentials(account_id=SIMULATOR_ACCOUNT_ID, client_id=demo.client_code,
                       base_url=f"http://127.0.0.1:{s.simulator_port}", egress_proxy=None,
                       api_key="simulator", pin=demo.pin, totp_secret=demo.totp_secret)


_reused = threading.local()  # per thread: an SDK client and its HTTP pool are not shared
REUSED_BROKERS = 32


def _account_broker(session: Session, user_id: int, account_id: int, r: redis.Redis, *,
                    reuse: bool = False) -> AngelBroker:
    # NotFound for others' accounts
    creds, declared_ip = accounts.credentials_and_declared_ip(session, user_id, account_id)
    if not reuse:
        return angel_broker(creds, r, declared_ip=declared_ip)
    return _reused_broker(creds, r, declared_ip)


def _reused_broker(creds: Credentials, r: redis.Redis, declared_ip: str | None, *,
                   timeout: float = 7.0) -> AngelBroker:
    """One broker per account and thread, kept across jobs: its SDK client and kept-alive
    connection serve every order, instead of a new client, TLS context and TCP handshake per
    job. Safe to keep: session tokens and rate limits live in Redis, not in the object, and
    the key holds the decrypted credentials, so an edited account gets a new broker."""
    cache: dict[tuple[object, ...], AngelBroker] = _reused.__dict__.setdefault("brokers", {})
    key = (creds, declared_ip, id(r), timeout)
    broker = cache.pop(key, None)
    if broker is None:
        broker = angel_broker(creds, r, declared_ip=declared_ip, timeout=timeout)
        while len(cache) >= REUSED_BROKERS:
            cache.pop(next(iter(cache))).close()  # least recently used first
    cache[key] = broker  # (re)inserted last: most recently used
    return broker


def broker_for(session: Session, user_id: int, account_id: int | None, *, paper: bool,
               redis: redis.Redis, slippage_ticks: int = 1) -> Broker:
    """The Broker for one webhook link (see the module docstring)."""
    r = redis
    if not paper:
        if account_id is None:
            raise ValidationError("live trading needs a broker account", "account_id")
        return _account_broker(session, user_id, account_id, r, reuse=True)
    if account_id is not None:
        sources = live_prices(_account_broker(session, user_id, account_id, r, reuse=True), r)
        scope = f"u{user_id}:a{account_id}"
    else:
        sim = simulator_credentials()
        sources = (live_prices(_reused_broker(sim, r, None, timeout=3.0), r) if sim is not None
                   else RedisPriceSource(r))
        scope = f"u{user_id}"
    return PaperBroker(r, scope, sources, slippage_ticks=slippage_ticks)


def live_prices(broker: Broker, r: redis.Redis, *,
                max_age: float = DEFAULT_MAX_AGE_S) -> PriceSource:
    """Prices for deciding and filling: the feed's ticks at most `max_age` s old, else the
    broker's quote shared by every worker for a second (Angel allows 10 quotes/s). A paper
    broker prices itself."""
    if not isinstance(broker, AngelBroker):
        return broker
    server = broker.session.creds.base_url or "angel"
    return FallbackPriceSource(RedisPriceSource(r, max_age=max_age),
                               SharedQuoteCache(r, BrokerPriceSource(broker), server))


def test_connection(session: Session, user_id: int, account_id: int, *,
                    redis: redis.Redis | None = None) -> ConnectionReport:
    """Log in to the account afresh and report success or Angel's exact error, plus the IP
    its orders leave from. Never raises for broker answers."""
    r = redis if redis is not None else connect()
    broker = _account_broker(session, user_id, account_id, r)
    try:
        return broker.test_connection()
    finally:
        broker.close()
