"""Simulated Angel accounts and their sessions (JWT, refresh and feed tokens)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field

import pyotp

from ats_app.simulator.config import AccountSpec


@dataclass
class Account:
    client_code: str
    pin: str
    totp_secret: str
    static_ip: str | None
    cash: float
    name: str
    realised: float = 0.0

    @classmethod
    def from_spec(cls, spec: AccountSpec) -> Account:
        return cls(spec.client_code, spec.pin, spec.totp_secret, spec.static_ip, spec.cash,
                   spec.name)

    def totp_ok(self, code: str) -> bool:
        # valid_window=1 accepts the neighbouring 30 s steps, as Angel tolerates small drift.
        return pyotp.TOTP(self.totp_secret).verify(str(code).strip(), valid_window=1)


@dataclass
class _Token:
    client_code: str
    expires: float  # simulated epoch seconds
    kind: str  # "jwt" | "refresh" | "feed"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def strip_bearer(value: str | None) -> str:
    """Accept ``Bearer <jwt>`` (even doubled, as some SDK flows produce) or a bare JWT."""
    text = (value or "").strip()
    while text.lower().startswith("bearer "):
        text = text[7:].strip()
    return text


@dataclass
class Sessions:
    """Issues and checks tokens. Times are on the simulated clock, so moving the clock a day
    ahead ends sessions the way Angel's daily cut-off does."""

    jwt_ttl_s: float
    refresh_ttl_s: float
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _tokens: dict[str, _Token] = field(default_factory=dict)

    def _jwt(self, client: str, now: float, ttl: float, kind: str) -> str:
        # A real HS512 JWT with the claims Angel uses, so code that peeks at ``exp`` works.
        header = _b64(json.dumps({"alg": "HS512", "typ": "JWT"}).encode())
        claims = {"username": client, "roles": 0, "userType": "USER", "token_type": kind,
                  "iat": int(now), "exp": int(now + ttl), "jti": secrets.token_hex(8)}
        payload = _b64(json.dumps(claims).encode())
        sig = hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha512).digest()
        token = f"{header}.{payload}.{_b64(sig)}"
        self._tokens[token] = _Token(client, now + ttl, kind)
        return token

    def login(self, client: str, now: float) -> dict[str, str]:
        return {
            "jwtToken": self._jwt(client, now, self.jwt_ttl_s, "jwt"),
            "refreshToken": self._jwt(client, now, self.refresh_ttl_s, "refresh"),
            "feedToken": self._jwt(client, now, self.jwt_ttl_s, "feed"),
        }

    def refresh(self, refresh_token: str, now: float) -> tuple[str, dict[str, str]] | None:
        tok = self._tokens.get(refresh_token)
        if tok is None or tok.kind != "refresh" or tok.expires <= now:
            return None
        return tok.client_code, {
            "jwtToken": self._jwt(tok.client_code, now, self.jwt_ttl_s, "jwt"),
            "refreshToken": refresh_token,
            "feedToken": self._jwt(tok.client_code, now, self.jwt_ttl_s, "feed"),
        }

    def check(self, token: str, kind: str, now: float) -> str | None:
        """Client code owning a live token of this kind, else None."""
        tok = self._tokens.get(strip_bearer(token))
        if tok is None or tok.kind != kind or tok.expires <= now:
            return None
        return tok.client_code

    def expire(self, client: str, now: float, include_refresh: bool = False) -> int:
        """End a client's access (and feed) tokens now; refresh tokens survive unless asked."""
        n = 0
        for tok in self._tokens.values():
            if tok.client_code == client and (include_refresh or tok.kind != "refresh"):
                tok.expires = min(tok.expires, now)
                n += 1
        return n

    def logout(self, client: str, now: float) -> None:
        self.expire(client, now, include_refresh=True)
