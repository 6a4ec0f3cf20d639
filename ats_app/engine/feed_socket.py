"""The SDK's SmartWebSocketV2, minus its side effects, with per-socket state and a fast LTP path.

`FeedSocket` keeps the official client for the connection (handshake, websocket-client's
reader, ping/pong, subscribe/unsubscribe frames) and overrides only its `_on_*` callbacks,
the hooks the SDK itself passes to `websocket.WebSocketApp`.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from typing import Any

from SmartApi.smartWebSocketV2 import SmartWebSocketV2

from ats_app.engine.broker.sdk import quiet_sdk_logging

log = logging.getLogger("ats.feed")


class FeedSocket(SmartWebSocketV2):  # type: ignore[misc]
    """SmartWebSocketV2 without its side effects and with per-socket subscription state."""

    def __init__(self, *, url: str, jwt: str, api_key: str, client_code: str,
                 feed_token: str) -> None:
        # Not SmartWebSocketV2.__init__: it creates logs/<date>/ in the working directory and
        # attaches a logzero file handler that logs every frame. Same attributes otherwise.
        quiet_sdk_logging()
        self.auth_token, self.api_key = jwt, api_key
        self.client_code, self.feed_token = client_code, feed_token
        self.DISCONNECT_FLAG = True
        self.last_pong_timestamp = None
        self.MAX_RETRY_ATTEMPT = 0  # our supervisor reconnects, without limit
        self.retry_strategy, self.retry_delay = 0, 0
        self.retry_multiplier, self.retry_duration = 2, None
        self.current_retry_attempt = 0
        self.RESUBSCRIBE_FLAG = False
        self.input_request_dict: dict[Any, Any] = {}  # own copy, not the shared class dict
        self.ROOT_URI = url
        self.wsapp = None
        self.last_error: BaseException | str | None = None
        if not self._sanity_check():
            raise ValueError("the feed needs a JWT, API key, client code and feed token")

    def _on_open(self, wsapp: Any) -> None:
        # Always our on_open (which subscribes everything), never the SDK's resubscribe.
        self.on_open(wsapp)

    def _on_error(self, wsapp: Any, error: Any) -> None:
        self.last_error = error  # the SDK replaces it with "Max retry attempt reached"
        super()._on_error(wsapp, error)

    def _on_data(self, wsapp: Any, data: Any, data_type: int, continue_flag: Any) -> None:
        if data_type == 1 and data != "pong":  # the SDK drops text frames: errors among them
            log.warning("feed server says: %s", str(data)[:300])
            return
        super()._on_data(wsapp, data, data_type, continue_flag)

    def kill(self) -> None:
        """Close from another thread: shutdown() wakes the reader (close() can hang it)."""
        app = self.wsapp
        if app is None:
            return
        app.keep_running = False
        sock = getattr(getattr(app, "sock", None), "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
