"""Registration, login sessions, expiry, rate limiting and password changes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from ats_app.engine.core.errors import AuthError, Conflict, ValidationError
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import AuditEvent, User, UserSession, utcnow
from ats_app.engine.tenants import users


def _make(username: str = "alice", password: str = "password123") -> users.UserView:
    with session_scope() as s:
        return users.create_user(s, username, password, "Alice", "Smith")


def test_first_user_is_admin_and_later_ones_are_not(database_url: str) -> None:
    assert _make("alice").is_admin
    assert not _make("bob").is_admin


def test_username_unique_case_insensitively(database_url: str) -> None:
    _make("alice")
    with pytest.raises(Conflict), session_scope() as s:
        users.create_user(s, "ALICE", "password123", "A", "B")


@pytest.mark.parametrize(
    "username,password,first,field",
    [
        pytest.param("a", "password123", "A", "username", id="short-username"),
        pytest.param("bad name", "password123", "A", "username", id="space-in-username"),
        pytest.param("alice", "short", "A", "password", id="short-password"),
        pytest.param("alice", "password123", "  ", "first_name", id="blank-first-name"),
    ],
)
def test_registration_validation_names_the_field(
    database_url: str, username: str, password: str, first: str, field: str
) -> None:
    with pytest.raises(ValidationError) as err, session_scope() as s:
        users.create_user(s, username, password, first, "Smith")
    assert err.value.field == field
    with session_scope() as s:
        assert s.exec(select(User)).all() == []


def test_login_session_and_logout(database_url: str) -> None:
    user = _make()
    with session_scope() as s:
        assert users.authenticate(s, "Alice", "password123").id == user.id
        token = users.start_session(s, user.id)
    with session_scope() as s:
        assert users.user_for_token(s, token).username == "alice"
        stored = s.exec(select(UserSession)).one()
        assert stored.token_hash != token  # only a hash of the token is stored
        users.end_session(s, token)
    with session_scope() as s:
        assert users.user_for_token(s, token) is None


def test_expired_session_is_rejected(database_url: str) -> None:
    user = _make()
    with session_scope() as s:
        token = users.start_session(s, user.id)
        row = s.exec(select(UserSession)).one()
        row.expires_at = utcnow() - timedelta(seconds=1)
        s.add(row)
    with session_scope() as s:
        assert users.user_for_token(s, token) is None


def test_wrong_password_is_audited_and_rate_limited(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _make()
    for _ in range(5):
        with pytest.raises(AuthError, match="wrong username or password"), session_scope() as s:
            users.authenticate(s, "alice", "wrong-password")
    # Locked now, even with the right password.
    with pytest.raises(AuthError, match="too many failed logins"), session_scope() as s:
        users.authenticate(s, "alice", "password123")
    with session_scope() as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.action == users.LOGIN_FAILED)).all()
        assert len(events) == 5
        assert all("wrong-password" not in e.detail for e in events)
        # The window passes: login works again.
        for e in events:
            e.created_at = utcnow() - timedelta(hours=1)
            s.add(e)
    with session_scope() as s:
        assert users.authenticate(s, "alice", "password123").username == "alice"


def test_unknown_user_gets_the_same_error(database_url: str) -> None:
    with pytest.raises(AuthError, match="wrong username or password"), session_scope() as s:
        users.authenticate(s, "nobody", "password123")


def test_change_password_ends_all_sessions(database_url: str) -> None:
    user = _make()
    with session_scope() as s:
        token = users.start_session(s, user.id)
    with pytest.raises(AuthError), session_scope() as s:
        users.change_password(s, user.id, "not-current", "newpassword1")
    with session_scope() as s:
        users.change_password(s, user.id, "password123", "newpassword1")
    with session_scope() as s:
        assert users.user_for_token(s, token) is None
        assert users.authenticate(s, "alice", "newpassword1").id == user.id
    with pytest.raises(AuthError), session_scope() as s:
        users.authenticate(s, "alice", "password123")
