"""Notification tables: where a user's notices go, and which events they want.

A target's Apprise URL carries the service's secrets (bot token, SMTP password), so only its
ciphertext (`url_enc`, from `secrets_box`) and a masked `url_hint` for display are stored.
Event switches store only overrides: an event without a row is on (see `notify_targets`).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from ats_app.engine.models import _ts


class NotificationTarget(SQLModel, table=True):
    __tablename__ = "notification_targets"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    label: str = Field(max_length=100)
    url_enc: str = Field(max_length=4096)  # Fernet ciphertext of the Apprise URL
    url_hint: str = Field(max_length=255)  # e.g. tgram://12…/…89: never the secrets
    enabled: bool = Field(default=True)
    created_at: datetime = _ts()


class NotificationPref(SQLModel, table=True):
    """One user's switch for one event (`notify_format.Event` value)."""

    __tablename__ = "notification_prefs"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "event", name="uq_notification_prefs_user_event"),
    )
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    event: str = Field(max_length=32)
    enabled: bool = Field(default=True)
    updated_at: datetime = _ts()
