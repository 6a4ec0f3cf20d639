"""Database tables (SQLModel). Every row that belongs to a user carries `user_id`.

Money is stored as integer paise (`*_paise`) so SQLite and PostgreSQL agree exactly and no
float rounding creeps into P&L. Timestamps are timezone-aware UTC. Secret columns (`*_enc`)
hold only ciphertext from `secrets_box`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from ats_app.engine.store import generation


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Aware-UTC datetimes on every backend (SQLite returns naive values otherwise)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(**kw: object) -> object:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, **kw)  # type: ignore[arg-type]


def _ts_opt(**kw: object) -> object:
    return Field(default=None, sa_type=UTCDateTime, **kw)  # type: ignore[arg-type]


class User(SQLModel, table=True):
    __tablename__ = "users"
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    password_hash: str = Field(max_length=255)
    first_name: str = Field(max_length=100)
    last_name: str = Field(max_length=100)
    is_admin: bool = Field(default=False)
    created_at: datetime = _ts()
    password_changed_at: datetime = _ts()


class UserSession(SQLModel, table=True):
    """A browser login. Only the SHA-256 of the token is stored."""

    __tablename__ = "user_sessions"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    token_hash: str = Field(max_length=64, unique=True, index=True)
    created_at: datetime = _ts()
    expires_at: datetime = Field(sa_type=UTCDateTime)  # type: ignore[call-overload]


class BrokerAccount(SQLModel, table=True):
    __tablename__ = "broker_accounts"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "label", name="uq_broker_accounts_user_label"),
    )
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    label: str = Field(max_length=100)
    client_id: str = Field(max_length=64)
    api_key_enc: str = Field(max_length=1024)
    pin_enc: str = Field(max_length=1024)
    totp_secret_enc: str = Field(max_length=1024)
    base_url: str | None = Field(default=None, max_length=255)  # None: Angel One's own API
    egress_proxy: str | None = Field(default=None, max_length=255)
    egress_ip: str | None = Field(default=None, max_length=64)
    # A local address of this server that the account's connections bind to (exclusive
    # with egress_proxy); on EC2 a secondary private IP with its own Elastic IP.
    egress_source_ip: str | None = Field(default=None, max_length=64)
    is_simulated: bool = Field(default=False)
    # Per-account risk limits, beside the user's (`risk_limits`): None = only the user's apply.
    max_open_positions: int | None = Field(default=None)
    max_lots_per_order: int | None = Field(default=None)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Strategy(SQLModel, table=True):
    __tablename__ = "strategies"
    __table_args__ = (sa.UniqueConstraint("user_id", "name", name="uq_strategies_user_name"),)
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=100)
    description: str = Field(default="", max_length=2000)
    created_at: datetime = _ts()


class WebhookLink(SQLModel, table=True):
    __tablename__ = "webhook_links"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=100)
    token: str = Field(max_length=64, unique=True, index=True)  # the URL part, >=128 bits
    secret_enc: str = Field(max_length=1024)  # revealable on demand, so encrypted not hashed
    strategy_id: int | None = Field(default=None, foreign_key="strategies.id", ondelete="SET NULL")
    stop_loss_pct: float | None = Field(default=None)
    target_pct: float | None = Field(default=None)
    trailing_stop_pct: float | None = Field(default=None)
    paper: bool = Field(default=True)
    enabled: bool = Field(default=True)
    # Entries arriving while the market is closed wait for the next open instead of being
    # refused (exits always run at once).
    queue_outside_hours: bool = Field(default=False)
    # The user's alerts close positions (exit/sell): what lets a link have no stop-loss,
    # target or trailing stop at all.
    exits_by_signal: bool = Field(default=False)
    # Stop at broker: each filled entry's stop-loss also rests in the broker's book as a
    # SELL stop-loss order, so the position stays protected while our processes are down.
    broker_stop: bool = Field(default=False)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class WebhookLinkAccount(SQLModel, table=True):
    """Which broker accounts a link trades on, each with its own lot multiplier."""

    __tablename__ = "webhook_link_accounts"
    __table_args__ = (sa.UniqueConstraint("link_id", "account_id", name="uq_link_account"),)
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    link_id: int = Field(foreign_key="webhook_links.id", index=True, ondelete="CASCADE")
    account_id: int = Field(foreign_key="broker_accounts.id", index=True, ondelete="CASCADE")
    lot_multiplier: int = Field(default=1)


class Alert(SQLModel, table=True):
    """One received TradingView alert. (link_id, dedup_key) is unique: no alert is doubled."""

    __tablename__ = "alerts"
    __table_args__ = (sa.UniqueConstraint("link_id", "dedup_key", name="uq_alerts_link_dedup"),)
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    link_id: int = Field(foreign_key="webhook_links.id", index=True, ondelete="CASCADE")
    dedup_key: str = Field(max_length=128)
    payload: str = Field(sa_type=sa.Text)  # type: ignore[call-overload]  # secret removed
    action: str = Field(default="", max_length=8)  # buy / sell / exit
    symbol: str = Field(default="", max_length=64)
    # ACCEPTED -> PROCESSING [-> PLACED] -> DONE | REJECTED | FAILED; IGNORED when the bot
    # was stopped. PLACED: every account's order is at the broker and some are still working;
    # the order-update stream (or the follower's book poll) settles it (`execution.verdict`).
    status: str = Field(default="ACCEPTED", max_length=32, index=True)
    reason: str | None = Field(default=None, max_length=500)
    source_ip: str | None = Field(default=None, max_length=64)
    received_at: datetime = _ts()
    processed_at: datetime | None = _ts_opt()
    # Set when an entry outside market hours was queued for the open: the open it waits for,
    # and so the id of the job that carries it from then on (`queueing.alert_job_id`).
    queued_until: datetime | None = _ts_opt()


class AlertTarget(SQLModel, table=True):
    """What one alert did on one of its link's accounts: the order it sent, or why not.

    One row per (alert, account): written before the account's order (or as its refusal),
    so the alert's detail can say for every account what happened and nothing is skipped
    silently. `account_key` is the account's id, 0 for paper without an account (a unique key
    cannot hold NULLs)."""

    __tablename__ = "alert_targets"
    __table_args__ = (
        sa.UniqueConstraint("alert_id", "account_key", name="uq_alert_targets_alert_account"),
    )
    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alerts.id", index=True, ondelete="CASCADE")
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    account_id: int | None = Field(
        default=None, foreign_key="broker_accounts.id", ondelete="SET NULL"
    )
    account_key: int = Field(default=0)
    # ORDERED (order_id says the rest) / NOT_TRADED (a limit, an open position, no position
    # to exit) / FAILED (an error before any order: contract, session, prices)
    outcome: str = Field(max_length=12)
    # The latest attempt's order. Indexed: a finished order settles every alert waiting on
    # it (an exit alert on a position already exiting waits on the first one's sell).
    order_id: int | None = Field(default=None, index=True)
    reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Order(SQLModel, table=True):
    """An order we intend to place or placed. `client_order_id` is Angel's `ordertag`."""

    __tablename__ = "orders"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    alert_id: int | None = Field(default=None, foreign_key="alerts.id", index=True)
    account_id: int | None = Field(default=None, foreign_key="broker_accounts.id", index=True)
    link_id: int | None = Field(
        default=None, foreign_key="webhook_links.id", index=True, ondelete="SET NULL"
    )
    position_id: int | None = Field(default=None, index=True)
    # Deterministic per (alert, account, purpose): a retried job finds its row, never a twin.
    client_order_id: str = Field(max_length=20, unique=True, index=True)
    # ENTRY / EXIT / STOP (a position's resting stop-loss at the broker, `broker_stops`)
    purpose: str = Field(default="ENTRY", max_length=8)
    broker_order_id: str | None = Field(default=None, max_length=64, index=True)
    exchange: str = Field(max_length=8)
    symbol: str = Field(max_length=64)
    symbol_token: str = Field(max_length=32)
    side: str = Field(max_length=4)  # BUY / SELL
    order_type: str = Field(default="MARKET", max_length=20)
    product: str = Field(default="INTRADAY", max_length=20)
    quantity: int
    price_paise: int | None = Field(default=None)  # requested (signal / limit) price
    trigger_paise: int | None = Field(default=None)  # a stop order's trigger (purpose STOP)
    status: str = Field(default="CREATED", max_length=20, index=True)  # engine.fsm.OrderStatus
    filled_quantity: int = Field(default=0)
    average_price_paise: int | None = Field(default=None)
    reason: str | None = Field(default=None, max_length=500)
    paper: bool = Field(default=True)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Position(SQLModel, table=True):
    __tablename__ = "positions"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    account_id: int | None = Field(default=None, foreign_key="broker_accounts.id", index=True)
    link_id: int | None = Field(default=None, foreign_key="webhook_links.id", index=True)
    exchange: str = Field(max_length=8)
    symbol: str = Field(max_length=64)
    symbol_token: str = Field(max_length=32)
    side: str = Field(default="LONG", max_length=5)
    quantity: int
    lot_size: int = Field(default=1)
    tick_size_paise: int = Field(default=5)
    entry_price_paise: int
    initial_stop_paise: int | None = Field(default=None)
    stop_paise: int | None = Field(default=None)
    target_paise: int | None = Field(default=None)
    trailing_stop_pct: float | None = Field(default=None)
    peak_price_paise: int | None = Field(default=None)
    # Its stop-loss rests at the broker too (the link's `broker_stop` when it opened).
    broker_stop: bool = Field(default=False)
    status: str = Field(default="OPEN", max_length=12, index=True)  # OPEN / EXITING / CLOSED
    exit_price_paise: int | None = Field(default=None)
    exit_reason: str | None = Field(default=None, max_length=32)
    realized_pnl_paise: int | None = Field(default=None)
    paper: bool = Field(default=True)
    opened_at: datetime = _ts()
    closed_at: datetime | None = _ts_opt()


class AuditEvent(SQLModel, table=True):
    """Append-only record of who did what (and every refused input). Never holds secrets."""

    __tablename__ = "audit_events"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int | None = Field(
        default=None, foreign_key="users.id", index=True, ondelete="SET NULL"
    )
    action: str = Field(max_length=64, index=True)
    subject: str | None = Field(default=None, max_length=255, index=True)
    detail: str = Field(default="", sa_type=sa.Text)  # type: ignore[call-overload]
    created_at: datetime = _ts(index=True)


class BotState(SQLModel, table=True):
    __tablename__ = "bot_state"
    user_id: int = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    running: bool = Field(default=False)
    updated_at: datetime = _ts()


# --- notifications: where a user's notices go, and which events they want -----------------
# A target's Apprise URL carries the service's secrets (bot token, SMTP password), so only its
# ciphertext (`url_enc`) and a masked `url_hint` for display are stored. Event switches store
# only overrides: an event without a row is on (see `notify.targets`).


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
    """One user's switch for one event (`notify.messages.Event` value)."""

    __tablename__ = "notification_prefs"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "event", name="uq_notification_prefs_user_event"),
    )
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    event: str = Field(max_length=32)
    enabled: bool = Field(default=True)
    updated_at: datetime = _ts()


# --- risk limits and the kill switch (one row per user; no row = the defaults) -------------


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


# --- refused alerts and Telegram control (issue 26) ---------------------------------------


class RefusedAlert(SQLModel, table=True):
    """A request to a user's webhook link that was refused (401, 408, 413, 400, 422 incl.
    stale, 429): the Alerts page shows it beside the accepted alerts. `body` is what was
    sent, with every secret masked (`intake.refusals.mask_body`), cut to a few KB."""

    __tablename__ = "refused_alerts"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    link_id: int = Field(foreign_key="webhook_links.id", index=True, ondelete="CASCADE")
    status_code: int
    error: str = Field(max_length=500)
    field: str | None = Field(default=None, max_length=64)
    body: str = Field(default="", sa_type=sa.Text)  # type: ignore[call-overload]
    source_ip: str | None = Field(default=None, max_length=64)
    received_at: datetime = _ts()


class TelegramChat(SQLModel, table=True):
    """The Telegram chat that controls a user's bot, bound with a one-time code: one chat per
    user and one user per chat (another user's chat can never reach this user)."""

    __tablename__ = "telegram_chats"
    user_id: int = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    chat_id: int = Field(sa_type=sa.BigInteger, unique=True)  # type: ignore[call-overload]
    username: str | None = Field(default=None, max_length=64)
    bound_at: datetime = _ts()


# --- reports and the what-if replay (issue 27) ------------------------------------------


class CandleDay(SQLModel, table=True):
    """One instrument's candles of one interval for one IST day, as a broker served them.

    Market data, not a user's: shared by every user replaying on the same server. Only days
    already over are stored, so a row is final; a day with no candles (a holiday, an expired
    contract) is stored empty, so asking again costs no broker call either."""

    __tablename__ = "candle_days"
    __table_args__ = (
        sa.UniqueConstraint("source", "exchange", "symbol_token", "interval", "day",
                            name="uq_candle_days_key"),
    )
    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=255)  # the SmartAPI server: "angel" or its base URL
    exchange: str = Field(max_length=8)
    symbol_token: str = Field(max_length=32)
    interval: str = Field(max_length=16)
    day: str = Field(max_length=10)  # YYYY-MM-DD, IST
    # JSON [[minute of day, open, high, low, close], ...] in paise (integers)
    candles: str = Field(sa_type=sa.Text)  # type: ignore[call-overload]
    fetched_at: datetime = _ts()


class ReplayRun(SQLModel, table=True):
    """One what-if replay: its source, grid, progress (the job updates it) and results."""

    __tablename__ = "replay_runs"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    link_id: int | None = Field(
        default=None, foreign_key="webhook_links.id", ondelete="SET NULL"
    )
    source: str = Field(max_length=16)  # link / tradingview
    label: str = Field(default="", max_length=255)  # what was replayed, for the page
    params: str = Field(sa_type=sa.Text)  # type: ignore[call-overload]  # JSON: grid, trades
    status: str = Field(default="QUEUED", max_length=12)  # QUEUED/RUNNING/DONE/FAILED
    progress: int = Field(default=0)  # percent
    message: str = Field(default="", max_length=500)
    result: str | None = Field(default=None, sa_type=sa.Text)  # type: ignore[call-overload]
    created_at: datetime = _ts()
    finished_at: datetime | None = _ts_opt()


# The webhook ack caches what it reads of these; a commit changing any of them bumps the
# generation its cache entries are checked against.
generation.watch((WebhookLink, WebhookLinkAccount, BrokerAccount, BotState, User))
