"""Per-user risk limits and kill-switch state (one row per user; no row = the defaults).

Kept out of `models.py` on purpose; `models.py` imports this module at its end so Alembic's
metadata sees the table. Money in integer paise like every other table.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from ats_app.engine.models import UTCDateTime, utcnow


class RiskLimits(SQLModel, table=True):
    __tablename__ = "risk_limits"
    user_id: int = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    max_open_positions: int | None = Field(default=5)  # None: no limit
    max_lots_per_order: int | None = Field(default=10)
    max_orders_per_day: int | None = Field(default=50)
    daily_loss_limit_paise: int | None = Field(default=None)  # positive; None: no limit
    exit_on_loss_limit: bool = Field(default=False)
    square_off_at: str = Field(default="15:15", max_length=5)  # HH:MM IST
    # The kill switch: entries are refused while this is at or after the bot's last change
    # of state (starting the bot again releases it). None: not engaged.
    halted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # type: ignore[call-overload]
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)  # type: ignore[call-overload]
