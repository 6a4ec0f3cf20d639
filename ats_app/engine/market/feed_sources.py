"""Where market data for a position comes from, and the reconnect back-off.

A position with a broker account gets its prices from that account (Angel counts socket
connections and REST quotes per client code, so accounts sharing a client code share one
source). A position without one (paper trading without an account) uses the local SmartAPI
simulator when it is enabled, else the same user's first broker account (market data needs
no static IP), else nothing: it is then marked stale and the audit log says it is unguarded.

The spots of the index underlyings ATM strikes are picked from (`SPOT_UNDERLYINGS`) have one
source of their own (`SourceResolver.for_spots`): the simulator when it is enabled, else the
lowest-id broker account of a user whose bot is running, else none (jobs then quote).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from urllib.parse import urlparse

from sqlmodel import Session, col, select

from ats_app.engine.broker.factory import simulator_credentials
from ats_app.engine.core.errors import AtsError
from ats_app.engine.store.models import BotState, BrokerAccount, Position
from ats_app.engine.tenants import accounts
from ats_app.engine.tenants.accounts import Credentials

log = logging.getLogger("ats.feed")

ANGEL_FEED_URL = "wss://smartapisocket.angelone.in/smart-stream"
MAX_TOKENS_PER_SOCKET = 1000  # Angel's per-connection limit
MAX_SOCKETS_PER_CLIENT = 3  # Angel's per-client-code limit
# Followed always, so an ATM alert reads its underlying's spot from Redis instead of spending
# one of Angel's 10 quotes/s (50-150 ms) on the order path.
SPOT_UNDERLYINGS = ("NIFTY", "BANKNIFTY", "FINNIFTY", "MIDCPNIFTY", "SENSEX")


def source_key(creds: Credentials) -> str:
    return f"{creds.client_id.upper()}@{creds.base_url or 'angel'}"


def feed_url(base_url: str | None) -> str:
    """The SmartWebSocketV2 URL of a SmartAPI-compatible server (Angel's when None)."""
    if not base_url:
        return ANGEL_FEED_URL
    u = urlparse(base_url)
    scheme = "wss" if u.scheme == "https" else "ws"
    return f"{scheme}://{u.netloc}/smart-stream"


class SourceResolver:
    """Credentials per position, cached per account (decrypting is not free)."""

    def __init__(self) -> None:
        self._by_account: dict[int, Credentials | None] = {}
        self._by_user: dict[int, Credentials | None] = {}

    def for_position(self, session: Session, p: Position) -> Credentials | None:
        if p.account_id is not None:
            return self._account(session, p.user_id, p.account_id)
        sim = simulator_credentials()
        if sim is not None:
            return sim
        if p.user_id not in self._by_user:
            first = session.exec(
                select(BrokerAccount.id).where(BrokerAccount.user_id == p.user_id)
                .order_by(col(BrokerAccount.id))
            ).first()
            self._by_user[p.user_id] = (
                self._account(session, p.user_id, first) if first is not None else None
            )
        return self._by_user[p.user_id]

    def for_spots(self, session: Session) -> Credentials | None:
        """The spots' source: the simulator when enabled, else the lowest-id account of a
        user whose bot is running (someone may trade), else None."""
        sim = simulator_credentials()
        if sim is not None:
            return sim
        row = session.exec(
            select(BrokerAccount.id, BrokerAccount.user_id)
            .join(BotState, col(BotState.user_id) == col(BrokerAccount.user_id))
            .where(col(BotState.running).is_(True)).order_by(col(BrokerAccount.id))
        ).first()
        return self._account(session, row[1], row[0]) if row is not None else None

    def _account(self, session: Session, user_id: int, account_id: int) -> Credentials | None:
        if account_id not in self._by_account:
            try:
                self._by_account[account_id] = accounts.credentials(session, user_id, account_id)
            except AtsError as exc:  # deleted account, unreadable secrets
                log.error("no market data credentials for account %s: %s", account_id, exc)
                self._by_account[account_id] = None
        return self._by_account[account_id]


@dataclass
class Backoff:
    """Unlimited reconnects: exponential with full jitter, capped; reset after a good session.

    Jitter keeps many feeds that lost their sockets at the same moment (a broker restart)
    from reconnecting in lockstep.
    """

    base: float = 0.5
    cap: float = 30.0
    attempt: int = 0
    rng: random.Random | None = None

    def next(self) -> float:
        rng = self.rng or random
        ceiling = min(self.cap, self.base * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return ceiling * (0.5 + 0.5 * rng.random())

    def reset(self) -> None:
        self.attempt = 0


def socket_silent(now: float, connected_at: float | None, last_data_at: float | None,
                  subscribed: int, silent_seconds: float) -> bool:
    """The watchdog's rule: an open socket with subscriptions that delivered nothing for
    `silent_seconds` (since it opened, or since its last tick) is dead, whatever TCP says."""
    if connected_at is None or subscribed == 0:
        return False
    since = max(connected_at, last_data_at or 0.0)
    return now - since > silent_seconds
