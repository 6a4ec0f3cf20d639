"""One SmartAPI session per broker account, shared by every process through Redis.

Tokens (JWT, refresh, feed) live in Redis, encrypted with the app's secret box, expiring
with the session. Any process that needs a client reads them; renewal and login happen under
a per-account Redis lock, and whoever gets the lock second re-reads Redis first, so ten
workers hitting an expired token cause one renewal, not ten logins.

Renewal order: `generateToken` with the refresh token (before the JWT expires, and whenever
Angel answers AG8001-style); a full login when renewal is refused or the refresh token is
gone. A refused TOTP (AB1050) is retried once with the code of the next 30-second step, then
reported: never a loop, Angel locks accounts after repeated failures.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import pyotp
import redis
from redis.exceptions import LockError

from ats_app.engine.broker import parsing
from ats_app.engine.broker.errors import (
    BrokerDown,
    EgressUnavailable,
    LoginFailed,
    SessionExpired,
    TotpRefused,
)
from ats_app.engine.broker.ratelimit import RateLimiter
from ats_app.engine.broker.sdk import AngelClient, SourceAddressUnavailable, proxies_for
from ats_app.engine.core.clock import IST
from ats_app.engine.tenants.accounts import Credentials
from ats_app.engine.tenants.secrets_box import default_box

__all__ = ["AngelSession", "Tokens", "session_key"]

log = logging.getLogger(__name__)

RENEW_MARGIN_S = 600.0  # renew this long before the JWT expires
FALLBACK_TTL_S = 6 * 3600.0  # when the JWT's exp claim is unreadable or implausible
TOTP_STEP_S = 30
LOCK_TIMEOUT_S = 60.0  # a crashed holder releases the lock by expiry
LOCK_WAIT_S = 30.0  # two login attempts (one TOTP retry) plus network fit in this


def session_key(account_id: int | str) -> str:
    return f"ats:angel:session:{account_id}"


@dataclass(frozen=True)
class Tokens:
    jwt: str
    refresh: str
    feed: str
    issued_at: float
    expires_at: float  # JWT usable until (our estimate)
    refresh_expires_at: float  # Angel's daily session end: after it only a login helps


def _next_session_end(now: float) -> float:
    """Angel ends every session daily; take midnight IST as the end of the day's session."""
    local = datetime.fromtimestamp(now, IST)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.timestamp()


def _jwt_exp(token: str) -> float | None:
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


def _release(lock: Any) -> None:
    # The lock can expire under a very slow login (or vanish with a flushed Redis); the
    # login's own outcome matters more than the bookkeeping, so never let this mask it.
    try:
        lock.release()
    except LockError:
        log.warning("Angel login lock expired before release")


def _strip_bearer(token: str) -> str:
    return token[7:] if token.lower().startswith("bearer ") else token


class AngelSession:
    """Tokens and logged-in SDK clients for one account.

    `clock` and `sleep` are injectable so tests can drive the TOTP step without waiting.
    """

    def __init__(self, creds: Credentials, r: redis.Redis, *, limiter: RateLimiter | None = None,
                 timeout: float = 7.0, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.creds = creds
        self._redis = r
        self._limiter = limiter
        self.timeout = timeout
        self.proxies = proxies_for(creds.egress_proxy)
        self.source_ip = creds.egress_source_ip  # local address every connection binds to
        self._clock = clock
        self._sleep = sleep
        self._client: AngelClient | None = None
        self.logins = 0  # logins this object performed (observability and tests)
        self.renewals = 0

    # ------------------------------------------------------------------ clients

    def new_client(self) -> AngelClient:
        """An SDK client pointed at the account's server, through its egress proxy or from
        its local source address."""
        try:
            return AngelClient(api_key=self.creds.api_key, root=self.creds.base_url,
                               timeout=self.timeout, proxies=self.proxies,
                               source_ip=self.source_ip)
        except SourceAddressUnavailable as exc:
            raise EgressUnavailable(str(exc)) from exc

    def client(self) -> AngelClient:
        """A client carrying valid tokens (logging in or renewing first when needed)."""
        tokens = self.tokens()
        if self._client is None:
            self._client = self.new_client()
        c = self._client
        c.setAccessToken(tokens.jwt)
        c.setRefreshToken(tokens.refresh)
        c.setFeedToken(tokens.feed)
        c.setUserId(self.creds.client_id)
        return c

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ------------------------------------------------------------------ tokens

    def tokens(self) -> Tokens:
        now = self._clock()
        t = self._load()
        if t is not None and (t.expires_at - now > RENEW_MARGIN_S
                              or now - t.issued_at < RENEW_MARGIN_S):
            # The second test stops a token that Angel issued close to its end of day from
            # being renewed on every call: it is used until Angel itself says it expired.
            return t
        return self._renew_locked(stale_jwt=t.jwt if t else None)

    def invalidate(self, stale_jwt: str | None) -> Tokens:
        """Angel said the token `stale_jwt` is invalid: renew (or log in) once for everyone."""
        return self._renew_locked(stale_jwt=stale_jwt, force=True)

    def login(self) -> Tokens:
        """A fresh login regardless of stored tokens (used by "Test connection")."""
        lock = self._lock()
        if not lock.acquire():
            raise BrokerDown("another process is logging in to this account; try again")
        try:
            return self._save(self._login())
        finally:
            _release(lock)

    def forget(self) -> None:
        self._redis.delete(session_key(self.creds.account_id))

    # ------------------------------------------------------------------ internals

    def _lock(self) -> Any:
        return self._redis.lock(f"ats:angel:login-lock:{self.creds.account_id}",
                                timeout=LOCK_TIMEOUT_S, blocking_timeout=LOCK_WAIT_S)

    def _load(self) -> Tokens | None:
        raw = self._redis.get(session_key(self.creds.account_id))
        if raw is None:
            return None
        try:
            data = json.loads(default_box().decrypt(raw.decode()))
            return Tokens(**data)
        except Exception:  # unreadable (key rotated, old format): log in again
            log.warning("stored Angel session for account %s is unreadable; logging in again",
                        self.creds.account_id)
            return None

    def _save(self, t: Tokens) -> Tokens:
        ttl_ms = int((t.refresh_expires_at - self._clock()) * 1000)
        if ttl_ms > 0:
            blob = default_box().encrypt(json.dumps(asdict(t)))
            self._redis.set(session_key(self.creds.account_id), blob, px=ttl_ms)
        return t

    def _renew_locked(self, stale_jwt: str | None, force: bool = False) -> Tokens:
        lock = self._lock()
        if not lock.acquire():
            raise BrokerDown("another process is logging in to this account; try again")
        try:
            now = self._clock()
            t = self._load()
            if t is not None and t.jwt != stale_jwt and t.expires_at > now:
                return t  # another process renewed while we waited for the lock
            if t is not None and t.refresh_expires_at > now:
                try:
                    return self._save(self._generate_token(t))
                except SessionExpired as exc:
                    log.info("Angel refused token renewal for account %s (%s); logging in",
                             self.creds.account_id, exc.errorcode)
            return self._save(self._login())
        finally:
            _release(lock)

    def _tokens_from(self, jwt: str, refresh: str, feed: str) -> Tokens:
        now = self._clock()
        day_end = _next_session_end(now)
        exp = _jwt_exp(_strip_bearer(jwt))
        if exp is None or exp <= now + RENEW_MARGIN_S:
            exp = now + FALLBACK_TTL_S
        return Tokens(jwt=_strip_bearer(jwt), refresh=refresh, feed=feed, issued_at=now,
                      expires_at=min(exp, day_end), refresh_expires_at=day_end)

    def _call(self, route: str, fn: Callable[[], Any]) -> Any:
        try:
            env = fn()
        except Exception as exc:  # classified, non-SDK errors re-raised there
            raise parsing.error_from_exception(exc, route=route) from exc
        err = parsing.error_from_envelope(env, route=route)
        if err is not None:
            raise err
        return env

    def _generate_token(self, t: Tokens) -> Tokens:
        c = self.new_client()
        try:
            # The SDK's generateToken() indexes response['data'] before looking at the status,
            # so a refused renewal (AB8050, data: null) crashes it with a TypeError; send the
            # same request on the same SDK route and read the envelope ourselves.
            env = self._call("generateTokens",
                             lambda: c._postRequest("api.token", {"refreshToken": t.refresh}))
        finally:
            c.close()
        data = env.get("data") or {}
        self.renewals += 1
        return self._tokens_from(str(data["jwtToken"]),
                                 str(data.get("refreshToken") or t.refresh),
                                 str(data.get("feedToken") or t.feed))

    def _login(self) -> Tokens:
        c = self.new_client()
        try:
            return self._login_with(c)
        finally:
            c.close()

    def _login_with(self, c: AngelClient) -> Tokens:
        creds = self.creds
        for attempt in (1, 2):
            if self._limiter is not None:
                self._limiter.acquire("login")
            code = pyotp.TOTP(creds.totp_secret).at(self._clock())
            try:
                env = self._call(parsing.LOGIN_ROUTE,
                                 lambda code=code: c.generateSession(creds.client_id, creds.pin,
                                                                     code))
            except TotpRefused:
                if attempt == 2:
                    raise
                # Retry exactly once, with the next step's code (clock drift, or a code that
                # expired in flight). Waiting for the step boundary avoids resending the same code.
                now = self._clock()
                self._sleep(TOTP_STEP_S - (now % TOTP_STEP_S) + 0.5)
                continue
            except SessionExpired as exc:  # getProfile after login refused the new token
                raise LoginFailed(str(exc), broker_message=exc.broker_message,
                                  errorcode=exc.errorcode) from exc
            self.logins += 1
            data = env.get("data") or {}
            log.info("logged in to Angel account %s (%s)", creds.account_id, creds.client_id)
            return self._tokens_from(str(data["jwtToken"]), str(data["refreshToken"]),
                                     str(data.get("feedToken") or ""))
        raise AssertionError("unreachable")  # pragma: no cover
