"""Angel sessions against the simulator: login, shared encrypted tokens, renewal, TOTP retry."""

from __future__ import annotations

import threading
import time

import pyotp
import pytest
import redis

from ats_app.engine.broker import session as session_module
from ats_app.engine.broker.errors import LoginFailed, TotpRefused
from ats_app.engine.broker.session import session_key
from tests.broker.conftest import BrokerKit, make_creds
from tests.simulator.sim_kit import CLIENT, SECRET


def _refresh_tokens(kit: BrokerKit) -> int:
    # Each login issues exactly one refresh token; renewals reuse it.
    return sum(1 for t in kit.sim.server.state.sessions._tokens.values()
               if t.client_code == CLIENT and t.kind == "refresh")


def test_login_stores_tokens_encrypted_and_other_processes_reuse_them(
        kit: BrokerKit, rds: redis.Redis) -> None:
    first = kit.session()
    tokens = first.tokens()
    assert first.logins == 1
    raw = rds.get(session_key(1))
    assert raw is not None and raw.startswith(b"enc1:")
    assert tokens.jwt.encode() not in raw and tokens.refresh.encode() not in raw
    ttl_ms = rds.pttl(session_key(1))  # the stored session ends with Angel's session day
    assert abs(ttl_ms / 1000 - (tokens.refresh_expires_at - time.time())) < 2
    second = kit.session()  # another worker: same account, fresh object
    assert second.tokens().jwt == tokens.jwt and second.logins == 0
    assert second.client().getProfile(tokens.refresh)["data"]["clientcode"] == CLIENT


def test_concurrent_workers_log_in_once(kit: BrokerKit) -> None:
    sessions = [kit.session() for _ in range(6)]
    jwts: list[str] = []
    threads = [threading.Thread(target=lambda s=s: jwts.append(s.tokens().jwt))
               for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(jwts) == 6 and len(set(jwts)) == 1
    assert sum(s.logins for s in sessions) == 1
    assert _refresh_tokens(kit) == 1


def test_invalid_token_renews_with_refresh_token_not_a_login(kit: BrokerKit) -> None:
    s = kit.session()
    old = s.tokens().jwt
    kit.sim.control("POST", "/sim/expire", {"clientcode": CLIENT})
    other = kit.session()
    new = other.invalidate(old)
    assert new.jwt != old and other.renewals == 1 and other.logins == 0
    assert s.invalidate(old).jwt == new.jwt  # a second reporter of the same stale token
    assert s.renewals == 0  # ... finds it already renewed
    assert _refresh_tokens(kit) == 1


def test_failed_renewal_falls_back_to_full_login(kit: BrokerKit) -> None:
    s = kit.session()
    old = s.tokens().jwt
    kit.sim.control("POST", "/sim/expire", {"clientcode": CLIENT, "refresh": True})
    new = s.invalidate(old)
    assert new.jwt != old and s.logins == 2
    assert s.client().getProfile(new.refresh)["status"] is True


def test_token_near_expiry_is_renewed_before_use(
        kit: BrokerKit, monkeypatch: pytest.MonkeyPatch) -> None:
    # Far from Angel's day end, whatever the real hour: within 10 minutes of midnight IST a
    # fresh token is (by design, see the next test) used until Angel refuses it.
    monkeypatch.setattr(session_module, "_next_session_end", lambda now: now + 12 * 3600)
    s = kit.session()
    t = s.tokens()
    assert t.expires_at - t.issued_at > 3600
    late = t.expires_at - 60  # a minute before the JWT ends
    later = kit.session(clock=lambda: late)
    assert later.tokens().jwt != t.jwt and later.renewals == 1 and later.logins == 0


def test_token_issued_just_before_the_day_end_is_not_renewed_on_every_call(
        kit: BrokerKit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_module, "_next_session_end", lambda now: now + 300)
    s = kit.session()
    t = s.tokens()
    assert t.expires_at - t.issued_at <= 300  # capped at the day end, inside the margin
    later = kit.session(clock=lambda: t.issued_at + 120)
    assert later.tokens().jwt == t.jwt and later.renewals == 0 and later.logins == 0


def test_refused_totp_is_retried_once_at_the_next_step(kit: BrokerKit) -> None:
    # A clock 5 minutes slow makes the first code wrong; "sleeping" to the next step fixes it.
    drift = [300.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        drift[0] = 0.0

    s = kit.session(clock=lambda: time.time() - drift[0], sleep=sleep)
    s.tokens()
    assert s.logins == 1 and len(sleeps) == 1 and 0 < sleeps[0] <= 30.5


def test_totp_refused_twice_is_reported_not_looped(kit: BrokerKit) -> None:
    sleeps: list[float] = []
    wrong = pyotp.random_base32()
    assert wrong != SECRET
    s = kit.session(make_creds(kit.sim, secret=wrong), sleep=sleeps.append)
    with pytest.raises(TotpRefused) as caught:
        s.tokens()
    assert caught.value.errorcode == "AB1050" and caught.value.broker_message == "Invalid totp"
    assert len(sleeps) == 1 and s.logins == 0


def test_wrong_pin_fails_at_once_with_angels_text(kit: BrokerKit) -> None:
    sleeps: list[float] = []
    s = kit.session(make_creds(kit.sim, pin="0000"), sleep=sleeps.append)
    with pytest.raises(LoginFailed, match="Invalid clientcode or password") as caught:
        s.tokens()
    assert not isinstance(caught.value, TotpRefused) and sleeps == []
