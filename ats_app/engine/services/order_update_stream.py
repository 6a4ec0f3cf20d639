"""The order-update consumer process (`python -m ats_app.cli order-updates`).

For every live broker account that has a session (its tokens are in Redis: something logged
in today, e.g. the pre-open login or its first order), it keeps one order-update socket open
— the official SDK's `SmartWebSocketOrderUpdate` — and applies every message to the order
rows (`order_updates.apply_update`), waking the job that waits on the order.

- One socket per account row, one thread each; messages of one account are applied in the
  order they arrive. Reconnects without limit (jittered exponential back-off); a refused
  handshake (401/403: the token is dead) renews the session once through `AngelSession`.
- On every (re)connect, before the socket's own messages are read, orders left working
  while it was down are brought up to date from one order-book read (inside the shared
  rate limiter), and the account's "stream is up" key is set; jobs then stop polling.
- The key is refreshed every second while connected and deleted on disconnect, so jobs fall
  back to polling the order book as soon as the stream cannot be trusted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from types import FrameType
from typing import Any
from urllib.parse import urlparse

import redis
from SmartApi.smartWebSocketOrderUpdate import SmartWebSocketOrderUpdate
from sqlmodel import col, select

from ats_app.engine.broker.factory import angel_broker
from ats_app.engine.broker.sdk import quiet_sdk_logging
from ats_app.engine.broker.session import session_key
from ats_app.engine.broker.websocket_close import close_from_another_thread
from ats_app.engine.core.config import settings
from ats_app.engine.core.errors import AtsError
from ats_app.engine.execution import contracts, order_updates
from ats_app.engine.market.feed_sources import Backoff
from ats_app.engine.services.processes import STOP_GRACE_S, exit_within
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import BrokerAccount, Order, WebhookLink, WebhookLinkAccount
from ats_app.engine.store.redis_conn import connect
from ats_app.engine.tenants import accounts
from ats_app.engine.tenants.accounts import Credentials

log = logging.getLogger("ats.order_updates")

ANGEL_ORDER_UPDATE_URL = SmartWebSocketOrderUpdate.WEBSOCKET_URI
STATUS_KEY = "ats:order-updates:status"  # the process's own heartbeat (health check)
RESYNC_SECONDS = 2.0
# While the socket is down, the order book is read this often (1/s is Angel's limit, shared
# with the jobs) so that orders no job follows any more still finish and open their positions.
FALLBACK_POLL_S = 5.0


def order_update_url(base_url: str | None) -> str:
    """The order-update socket of a SmartAPI-compatible server (Angel's when None)."""
    if not base_url:
        return ANGEL_ORDER_UPDATE_URL
    u = urlparse(base_url)
    return f"{'wss' if u.scheme == 'https' else 'ws'}://{u.netloc}/smart-order-update"


class OrderUpdateSocket(SmartWebSocketOrderUpdate):  # type: ignore[misc]
    """The SDK's order-update socket, used as is except for three things it does on its own:

    - `__init__` creates logs/<date>/app.log in the working directory and points logzero at
      it (then `on_message` logs every order there): not called; same attributes otherwise;
    - `on_close` calls `retry_connect`, which sleeps 10 s and nests another `connect()` in
      the closing one, twice, then gives up: our thread reconnects instead;
    - `WEBSOCKET_URI` is set on the instance (Angel's, or a compatible server's).
    `connect()` (headers, `run_forever` with its ping) and `on_data` are the SDK's.
    """

    MAX_CONNECTION_RETRY_ATTEMPTS = 0

    def __init__(self, *, url: str, jwt: str, api_key: str, client_code: str,
                 feed_token: str, stream: AccountStream) -> None:
        quiet_sdk_logging()
        self.auth_token = f"Bearer {jwt}"  # Angel's documented header: Authorization: Bearer
        self.api_key, self.client_code, self.feed_token = api_key, client_code, feed_token
        self.WEBSOCKET_URI = url
        self.wsapp = None
        self.last_pong_timestamp = None
        self.current_retry_attempt = 0
        self.last_error: Any = None
        self._stream = stream

    def on_open(self, wsapp: Any) -> None:
        self._stream.opened()

    def on_message(self, wsapp: Any, message: Any) -> None:
        self._stream.message(message)

    def on_error(self, wsapp: Any, error: Any) -> None:
        self.last_error = error

    def on_close(self, wsapp: Any, close_status_code: Any, close_msg: Any) -> None:
        pass  # no SDK retry: AccountStream._run reconnects

    def kill(self) -> None:
        close_from_another_thread(self.wsapp)


@dataclass(frozen=True)
class LiveAccount:
    account_id: int
    user_id: int
    creds: Credentials


class AccountStream:
    """One account's socket and the thread that keeps it connected."""

    def __init__(self, account: LiveAccount, r: redis.Redis) -> None:
        self.account, self.redis = account, r
        self.connected = False
        self.reconnects = 0
        self.messages = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._up_lock = threading.Lock()  # connected + the Redis "up" key change together
        self._polled_at = 0.0
        self.polls = 0  # order-book reads made while the socket was down
        self._ws: OrderUpdateSocket | None = None
        self._relogin = False
        self._broker: Any = None
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"order-updates-{account.account_id}")

    def start(self) -> AccountStream:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        ws = self._ws
        if ws is not None:
            ws.kill()
        self.thread.join(10)

    def status(self) -> dict[str, Any]:
        return {"account_id": self.account.account_id, "connected": self.connected,
                "messages": self.messages, "reconnects": self.reconnects, "polls": self.polls,
                "error": self.error}

    def refresh(self) -> None:
        # Under the lock: a refresh racing a disconnect must not re-mark a dead stream "up".
        with self._up_lock:
            if self.connected:
                order_updates.mark_up(self.redis, self.account.account_id)

    # ------------------------------------------------------------ socket thread

    def _socket(self) -> OrderUpdateSocket:
        creds = self.account.creds
        if self._broker is None:
            self._broker = angel_broker(creds, self.redis, timeout=5.0)
        session = self._broker.session
        tokens = session.tokens()
        if self._relogin:  # the server refused the handshake: these tokens are dead
            tokens = session.invalidate(tokens.jwt)
            self._relogin = False
        return OrderUpdateSocket(url=order_update_url(creds.base_url), jwt=tokens.jwt,
                                 api_key=creds.api_key, client_code=creds.client_id,
                                 feed_token=tokens.feed, stream=self)

    def _run(self) -> None:
        backoff = Backoff(cap=30.0)
        while not self._stop.is_set():
            started_messages = self.messages
            ws: OrderUpdateSocket | None = None
            try:
                ws = self._socket()
                self._ws = ws
                if not self._stop.is_set():
                    ws.connect()  # returns when the socket closes
                self._note_error(ws.last_error)
            except Exception as exc:  # login refused, DNS, anything: back off and retry
                self._note_error(exc)
            finally:
                self._ws = None
                self._down()
            if self._stop.is_set():
                break
            if self.messages > started_messages:
                backoff.reset()  # that session worked: start the back-off afresh
            self.reconnects += 1
            delay = backoff.next()
            log.info("order updates %s: reconnecting in %.2f s (%s)", self.account.account_id,
                     delay, self.error)
            self._wait_polling(delay)
        if self._broker is not None:
            self._broker.close()

    def _wait_polling(self, delay: float) -> None:
        """Back off before reconnecting, reading the order book meanwhile (the fallback)."""
        until = time.monotonic() + delay
        while not self._stop.is_set():
            if time.monotonic() - self._polled_at >= FALLBACK_POLL_S:
                self._polled_at = time.monotonic()
                self._poll_book()
            left = until - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(min(left, FALLBACK_POLL_S))

    def _poll_book(self) -> None:
        if self._broker is None:
            return
        a = self.account
        try:
            changed = order_updates.catch_up(
                self._broker.orders, user_id=a.user_id, account_id=a.account_id,
                conn=self.redis, tick_of=self._tick_of)
        except Exception as exc:  # REST down too: the next poll or the reconnect catches up
            log.warning("order updates %s: order-book poll failed (%s)", a.account_id, exc)
            return
        self.polls += 1
        if changed:
            log.info("order updates %s: socket down, %d order(s) updated from the order book",
                     a.account_id, changed)

    def _down(self) -> None:
        with self._up_lock, contextlib.suppress(redis.RedisError):
            self.connected = False
            order_updates.mark_down(self.redis, self.account.account_id)

    def _note_error(self, error: object) -> None:
        self.error = "closed" if error is None else (str(error)[:300] or type(error).__name__)
        if getattr(error, "status_code", None) in (401, 403):
            self._relogin = True

    def opened(self) -> None:
        """Connected: catch up from the order book first, then trust the stream."""
        a = self.account
        try:
            changed = order_updates.catch_up(
                self._broker.orders, user_id=a.user_id, account_id=a.account_id,
                conn=self.redis, tick_of=self._tick_of)
            if changed:
                log.info("order updates %s: %d order(s) caught up from the order book",
                         a.account_id, changed)
        except Exception as exc:  # the book read failed: jobs keep polling until next time
            log.warning("order updates %s: catch-up failed (%s); reconnecting", a.account_id,
                        exc)
            self.error = f"catch-up failed: {exc}"[:300]
            if self._ws is not None:
                self._ws.kill()
            return
        with self._up_lock:
            self.connected, self.error = True, None
            order_updates.mark_up(self.redis, a.account_id)
        log.info("order updates %s: connected", a.account_id)

    def message(self, raw: Any) -> None:
        report = order_updates.parse_message(raw)
        if report is None:
            return
        self.messages += 1
        a = self.account
        try:
            order_updates.apply_update(report, user_id=a.user_id, account_id=a.account_id,
                                       conn=self.redis, tick_of=self._tick_of)
        except Exception:  # e.g. the database briefly unavailable: this update is lost
            log.exception("order updates %s: could not apply %s; reconnecting to catch up",
                          a.account_id, report.client_order_id)
            # The job following the order may already have left it to the stream, and the
            # socket never repeats a message: reconnect, so that jobs poll meanwhile and the
            # catch-up on connect reads the order from the book.
            self.error = f"could not apply {report.client_order_id}"
            self._down()
            if self._ws is not None:
                self._ws.kill()

    def _tick_of(self, order: Order) -> Decimal:
        return contracts.tick_for(self.account.creds.base_url, order.exchange,
                                  order.symbol_token)


def live_accounts(r: redis.Redis) -> dict[int, LiveAccount]:
    """Accounts traded live by some webhook link and holding a session in Redis."""
    if settings().trading_mode != "live":
        return {}
    out: dict[int, LiveAccount] = {}
    with session_scope() as s:
        rows = s.exec(
            select(BrokerAccount.id, BrokerAccount.user_id)
            .where(col(BrokerAccount.id) == WebhookLinkAccount.account_id)
            .where(WebhookLinkAccount.link_id == WebhookLink.id)
            .where(col(WebhookLink.paper).is_(False))
            .distinct()
        ).all()
        for account_id, user_id in rows:
            if account_id is None or not r.exists(session_key(account_id)):
                continue
            try:
                creds = accounts.credentials(s, user_id, account_id)
            except AtsError as exc:  # unreadable secrets: nothing to connect with
                log.error("order updates: no credentials for account %s: %s", account_id, exc)
                continue
            out[account_id] = LiveAccount(account_id, user_id, creds)
    return out


class OrderUpdateProcess:
    def __init__(self, r: redis.Redis | None = None) -> None:
        self.redis = r or connect()
        self.streams: dict[int, AccountStream] = {}
        self.stopping = threading.Event()

    def resync(self) -> None:
        desired = live_accounts(self.redis)
        for account_id in set(self.streams) - set(desired):
            self.streams.pop(account_id).stop()
        for account_id, account in desired.items():
            current = self.streams.get(account_id)
            if current is not None and current.account.creds != account.creds:
                current.stop()  # credentials or server changed: connect afresh
                current = None
            if current is None:
                self.streams[account_id] = AccountStream(account, self.redis).start()

    def write_status(self) -> None:
        for stream in self.streams.values():
            stream.refresh()
        status = {"at": time.time(), "pid": os.getpid(),
                  "accounts": [s.status() for s in self.streams.values()]}
        self.redis.set(STATUS_KEY, json.dumps(status), ex=10)

    def run(self) -> None:
        last_resync = 0.0
        try:
            while not self.stopping.is_set():
                if time.monotonic() - last_resync >= RESYNC_SECONDS:
                    try:
                        self.resync()
                    except Exception:  # database or Redis hiccup: keep the sockets, retry
                        log.exception("order updates: resync failed")
                    last_resync = time.monotonic()
                try:
                    self.write_status()
                except redis.RedisError:
                    log.warning("order updates: cannot write status to Redis")
                self.stopping.wait(1.0)
        finally:
            self.close()

    def close(self) -> None:
        for stream in self.streams.values():
            stream.stop()
        self.streams.clear()
        with contextlib.suppress(redis.RedisError):
            self.redis.delete(STATUS_KEY)


def run_order_updates() -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s order-updates %(levelname)s %(message)s")
    process = OrderUpdateProcess()

    def _stop(signum: int, frame: FrameType | None) -> None:
        process.stopping.set()
        exit_within(STOP_GRACE_S)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("order-update consumer started")
    process.run()
    log.info("order-update consumer stopped")
