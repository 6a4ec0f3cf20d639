"""Which Telegram chat controls which user: one-time codes (Redis, ten minutes) and the
bound chats (`TelegramChat`, one per user and one user per chat)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
from sqlmodel import Session, select

from ats_app.engine.core.clock import ist_stamp
from ats_app.engine.core.errors import ValidationError
from ats_app.engine.store import audit
from ats_app.engine.store.models import TelegramChat, utcnow

DEFAULT_API_URL = "https://api.telegram.org"
CODE_TTL_S = 600
CODE_LENGTH = 8
# No 0/O or 1/I: a code is read off one screen and typed on another.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
MAX_CODE_TRIES = 5  # wrong codes a chat may send per CODE_TTL_S (40 bits each: no guessing)


@dataclass(frozen=True)
class TelegramConfig:
    token: str | None
    api_url: str

    @property
    def enabled(self) -> bool:
        return bool(self.token)


def telegram_config(env: Mapping[str, str] | None = None) -> TelegramConfig:
    """`TELEGRAM_BOT_TOKEN` (unset: no Telegram control) and `TELEGRAM_API_URL`."""
    if env is None:
        from ats_app.engine.core.config import environment

        env = environment()
    token = env.get("TELEGRAM_BOT_TOKEN", "").strip() or None
    url = env.get("TELEGRAM_API_URL", "").strip().rstrip("/") or DEFAULT_API_URL
    if not url.startswith(("http://", "https://")):
        from ats_app.engine.core.config import ConfigError

        raise ConfigError(f"TELEGRAM_API_URL must be an http(s) URL, got {url!r}")
    return TelegramConfig(token, url)


def _code_key(code: str) -> str:
    return f"ats:tg:code:{code}"


def _user_code_key(user_id: int) -> str:
    return f"ats:tg:usercode:{user_id}"


def _tries_key(chat_id: int) -> str:
    return f"ats:tg:tries:{chat_id}"


def new_code(conn: redis.Redis, user_id: int) -> str:
    """A fresh one-time code for `user_id`; the user's previous code stops working."""
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    old = conn.get(_user_code_key(user_id))
    pipe = conn.pipeline()
    if old:
        pipe.delete(_code_key(old.decode() if isinstance(old, bytes) else str(old)))
    pipe.set(_code_key(code), user_id, ex=CODE_TTL_S)
    pipe.set(_user_code_key(user_id), code, ex=CODE_TTL_S)
    pipe.execute()
    audit.record_now("telegram.code_issued", user_id=user_id)  # never the code itself
    return code


def normalize_code(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch.isalnum())


def redeem(conn: redis.Redis, code: str, chat_id: int) -> int | None:
    """The user whose code this is, the code used up; None for a wrong or expired code (and
    for any code once the chat has sent MAX_CODE_TRIES wrong ones)."""
    tries = conn.get(_tries_key(chat_id))
    if tries is not None and int(tries) >= MAX_CODE_TRIES:
        return None
    pipe = conn.pipeline()  # MULTI: read and delete as one, so a code binds one chat
    pipe.get(_code_key(normalize_code(code)))
    pipe.delete(_code_key(normalize_code(code)))
    raw, _ = pipe.execute()
    if raw is None:
        pipe = conn.pipeline()
        pipe.incr(_tries_key(chat_id))
        pipe.expire(_tries_key(chat_id), CODE_TTL_S)
        pipe.execute()
        return None
    user_id = int(raw)
    conn.delete(_user_code_key(user_id))
    return user_id


def bind(session: Session, user_id: int, chat_id: int, username: str | None) -> None:
    """Bind the chat to the user (replacing the user's previous chat). A chat already
    controlling another user is refused: one chat never reaches two users."""
    taken = session.exec(select(TelegramChat).where(TelegramChat.chat_id == chat_id)).first()
    if taken is not None and taken.user_id != user_id:
        raise ValidationError("this chat already controls another user's bot: unlink it "
                              "there first", "chat")
    row = session.get(TelegramChat, user_id) or TelegramChat(user_id=user_id, chat_id=chat_id)
    row.chat_id, row.bound_at = chat_id, utcnow()  # a new phone replaces the old chat
    row.username = (username or "")[:64] or None
    session.add(row)
    audit.record(session, "telegram.bound", user_id=user_id, subject=str(chat_id),
                 username=row.username)


def unbind(session: Session, user_id: int) -> bool:
    row = session.get(TelegramChat, user_id)
    if row is None:
        return False
    session.delete(row)
    audit.record(session, "telegram.unbound", user_id=user_id, subject=str(row.chat_id))
    return True


def user_of_chat(session: Session, chat_id: int) -> int | None:
    return session.exec(
        select(TelegramChat.user_id).where(TelegramChat.chat_id == chat_id)).first()


def binding_view(session: Session, user_id: int) -> dict[str, Any] | None:
    """What the Profile page shows: the bound chat's username and since when."""
    row = session.get(TelegramChat, user_id)
    if row is None:
        return None
    return {"username": row.username or "", "bound_ist": ist_stamp(row.bound_at)}
