"""Users, login sessions and the login rate limit."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, func, select

from ats_app.engine.core.config import new_token, settings
from ats_app.engine.core.errors import AuthError, Conflict, NotFound, ValidationError
from ats_app.engine.store import audit
from ats_app.engine.store.models import AuditEvent, User, UserSession, utcnow
from ats_app.engine.tenants.passwords import (
    DUMMY_HASH,
    hash_password,
    password_problem,
    verify_password,
)

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{2,31}$")
LOGIN_FAILED = "auth.login_failed"


@dataclass(frozen=True)
class UserView:
    """What the UI may know about a user (no hash)."""

    id: int
    username: str
    first_name: str
    last_name: str
    is_admin: bool


def _view(user: User) -> UserView:
    assert user.id is not None
    return UserView(user.id, user.username, user.first_name, user.last_name, user.is_admin)


def normalize_username(username: str) -> str:
    return username.strip().lower()


def _validate_name(value: str, field: str) -> str:
    value = value.strip()
    if not value:
        raise ValidationError(f"{field.replace('_', ' ')} is required", field)
    if len(value) > 100:
        raise ValidationError(f"{field.replace('_', ' ')} must be at most 100 characters", field)
    return value


def create_user(
    session: Session, username: str, password: str, first_name: str, last_name: str
) -> UserView:
    """Create a user; the first user ever created is the administrator."""
    uname = normalize_username(username)
    if not USERNAME_RE.match(uname):
        raise ValidationError(
            "username must be 3-32 characters: letters, digits, '.', '_' or '-'", "username"
        )
    problem = password_problem(password)
    if problem:
        raise ValidationError(problem, "password")
    first = _validate_name(first_name, "first_name")
    last = _validate_name(last_name, "last_name")
    if session.exec(select(User.id).where(User.username == uname)).first() is not None:
        raise Conflict(f"username {uname!r} is already taken")
    is_first = session.exec(select(func.count()).select_from(User)).one() == 0
    user = User(
        username=uname,
        password_hash=hash_password(password),
        first_name=first,
        last_name=last,
        is_admin=is_first,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent registration won the race
        session.rollback()
        raise Conflict(f"username {uname!r} is already taken") from exc
    audit.record(session, "user.created", user_id=user.id, subject=uname, admin=is_first)
    return _view(user)


def get_user(session: Session, user_id: int) -> UserView:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    return _view(user)


def find_user(session: Session, username: str) -> UserView:
    user = session.exec(select(User).where(User.username == normalize_username(username))).first()
    if user is None:
        raise NotFound(f"no user named {normalize_username(username)!r}")
    return _view(user)


def resolve(session: Session, ref: str) -> int:
    """A user id from what an operator typed: a username, or else a numeric id."""
    try:
        return find_user(session, ref).id
    except NotFound:
        if ref.isdigit():
            return get_user(session, int(ref)).id
        raise


def _recent_failures(session: Session, username: str, now: datetime) -> int:
    since = now - timedelta(minutes=settings().login_window_minutes)
    stmt = (
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action == LOGIN_FAILED)
        .where(AuditEvent.subject == username)
        .where(col(AuditEvent.created_at) >= since)
    )
    return int(session.exec(stmt).one())


def authenticate(session: Session, username: str, password: str) -> UserView:
    """Check credentials, rate-limited per username; failures are audited (never the password)."""
    uname = normalize_username(username)
    now = utcnow()
    if _recent_failures(session, uname, now) >= settings().login_max_failures:
        audit.record_now("auth.login_locked", subject=uname)
        raise AuthError(
            "too many failed logins for this username; "
            f"try again in {settings().login_window_minutes} minutes"
        )
    user = session.exec(select(User).where(User.username == uname)).first()
    # Verify against a dummy hash for unknown users so response time does not leak usernames.
    ok = verify_password(user.password_hash if user else DUMMY_HASH, password)
    if user is None or not ok:
        audit.record_now(LOGIN_FAILED, user_id=user.id if user else None, subject=uname)
        raise AuthError("wrong username or password")
    audit.record(session, "auth.login", user_id=user.id, subject=uname)
    return _view(user)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, user_id: int, hours: int | None = None) -> str:
    """Create a login session; returns the token for the browser (only its hash is stored)."""
    token = new_token(32)
    expires = utcnow() + timedelta(hours=hours or settings().session_hours)
    session.add(UserSession(user_id=user_id, token_hash=_token_hash(token), expires_at=expires))
    # Opportunistic cleanup keeps the table small without a scheduled job.
    session.exec(delete(UserSession).where(col(UserSession.expires_at) < utcnow()))  # type: ignore[call-overload]
    return token


def user_for_token(session: Session, token: str | None) -> UserView | None:
    """The user of a valid, unexpired session token, else None."""
    if not token:
        return None
    row = session.exec(
        select(UserSession).where(UserSession.token_hash == _token_hash(token))
    ).first()
    if row is None or row.expires_at <= utcnow():
        return None
    user = session.get(User, row.user_id)
    return _view(user) if user else None


def end_session(session: Session, token: str | None) -> None:
    if not token:
        return
    row = session.exec(
        select(UserSession).where(UserSession.token_hash == _token_hash(token))
    ).first()
    if row is not None:
        audit.record(session, "auth.logout", user_id=row.user_id)
        session.delete(row)


def change_password(
    session: Session, user_id: int, current_password: str, new_password: str
) -> None:
    """Change a password; every other session of the user is ended."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    if not verify_password(user.password_hash, current_password):
        audit.record_now(
            "auth.password_change_refused", user_id=user_id, reason="wrong current password"
        )
        raise AuthError("current password is wrong")
    problem = password_problem(new_password)
    if problem:
        raise ValidationError(problem, "new_password")
    if current_password == new_password:
        raise ValidationError("new password must differ from the current one", "new_password")
    user.password_hash = hash_password(new_password)
    user.password_changed_at = utcnow()
    session.add(user)
    session.exec(delete(UserSession).where(col(UserSession.user_id) == user_id))  # type: ignore[call-overload]
    audit.record(session, "auth.password_changed", user_id=user_id)


def set_password(session: Session, user_id: int, new_password: str) -> None:
    """Administrator reset (CLI): no current password needed; sessions are ended."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    problem = password_problem(new_password)
    if problem:
        raise ValidationError(problem, "password")
    user.password_hash = hash_password(new_password)
    user.password_changed_at = utcnow()
    session.add(user)
    session.exec(delete(UserSession).where(col(UserSession.user_id) == user_id))  # type: ignore[call-overload]
    audit.record(session, "auth.password_reset", user_id=user_id)
