"""The SDK's SmartWebSocketV2, minus its side effects, with per-socket state and a fast LTP path.

`FeedSocket` keeps the official client, unmodified, for the connection (handshake,
websocket-client's reader, ping/pong, subscribe/unsubscribe frames) and overrides only the
`_on_*` callbacks the SDK itself hands to `websocket.WebSocketApp`.

Fast LTP path: the feed subscribes in LTP mode, and for those packets the SDK's
`_parse_binary_data` (six slice-and-unpack calls, the token read a character at a time, a
dict per tick) cost ~3 us of the feed's ~30 us per tick. When `on_ltp` is set, an LTP packet
is decoded here with one precompiled struct into (exchange type, token, ltp paise), the same
values the SDK's dict carries (`exchange_type`, `token`, `last_traded_price`; a test compares
both on the simulator's packets). Every other packet (Quote, SnapQuote, Depth, anything
short) still goes through the SDK's parser and `on_data`.
"""

from __future__ import annotations

import logging
import select
import ssl
import struct
from collections.abc import Callable
from typing import Any

from SmartApi.smartWebSocketV2 import SmartWebSocketV2

from ats_app.engine.broker.sdk import quiet_sdk_logging
from ats_app.engine.broker.websocket_close import close_from_another_thread

log = logging.getLogger("ats.feed")

# The 51-byte head every packet starts with (SmartWebSocketV2._parse_binary_data's offsets):
# mode, exchange type, token (NUL-padded ASCII), sequence, exchange timestamp, LTP in paise.
_LTP_HEAD = struct.Struct("<BB25sqqq")
_LTP_MODE = 1


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
        # (exchange type, token, ltp paise) per LTP packet, instead of on_data's dict.
        self.on_ltp: Callable[[int, str, int], None] | None = None
        # Called after a data frame when no further frame is ready: the end of a burst.
        self.on_drained: Callable[[], None] | None = None
        self._poll: select.poll | None = None
        self._poll_fd = -1
        if not self._sanity_check():
            raise ValueError("the feed needs a JWT, API key, client code and feed token")

    def _on_open(self, wsapp: Any) -> None:
        # Always our on_open (which subscribes everything), never the SDK's resubscribe.
        self.on_open(wsapp)

    def _on_error(self, wsapp: Any, error: Any) -> None:
        self.last_error = error  # the SDK replaces it with "Max retry attempt reached"
        super()._on_error(wsapp, error)

    def _on_close(self, wsapp: Any, *_status: Any) -> None:
        # websocket-client passes (status code, message) too; the SDK's own handler takes
        # only the app, so every close logged a TypeError from the callback.
        self.on_close(wsapp)

    def _on_data(self, wsapp: Any, data: Any, data_type: int, continue_flag: Any) -> None:
        on_ltp = self.on_ltp
        if data_type == 1 and data != "pong":  # the SDK drops text frames: errors among them
            log.warning("feed server says: %s", str(data)[:300])
        elif (data_type == 2 and on_ltp is not None and len(data) >= _LTP_HEAD.size
                and data[0] == _LTP_MODE):
            on_ltp(*decode_ltp(data))
        else:
            super()._on_data(wsapp, data, data_type, continue_flag)
        self._end_of_burst()

    def _on_ping(self, wsapp: Any, data: Any) -> None:
        super()._on_ping(wsapp, data)
        self._end_of_burst()  # a control frame can be the last of a burst too

    def _on_pong(self, wsapp: Any, data: Any) -> None:
        super()._on_pong(wsapp, data)
        self._end_of_burst()

    def _end_of_burst(self) -> None:
        if self.on_drained is not None and not self.more_ready():
            self.on_drained()

    def more_ready(self) -> bool:
        """Whether another frame (or part of one) is already readable: then the reader will
        call us again at once, and the feed keeps batching. websocket-client reads a frame's
        exact length from the socket, so nothing it has not handed us waits in its buffers;
        TLS may hold decrypted bytes, which `pending()` reports."""
        sock = getattr(getattr(self.wsapp, "sock", None), "sock", None)
        if sock is None:
            return False
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        fd = sock.fileno()
        if fd < 0:  # closed under us: the reader is about to find out
            return False
        if fd != self._poll_fd:  # one poll object per socket: a reconnect brings a new one
            self._poll, self._poll_fd = select.poll(), fd
            self._poll.register(fd, select.POLLIN)
        try:
            return bool(self._poll.poll(0))
        except OSError:
            return False

    def kill(self) -> None:
        close_from_another_thread(self.wsapp)


def decode_ltp(packet: bytes) -> tuple[int, str, int]:
    """(exchange type, token, ltp paise) of a packet's head, as the SDK decodes them (its
    token is the bytes up to the first NUL, one character per byte: latin-1)."""
    _mode, exchange_type, raw_token, _seq, _ts, ltp = _LTP_HEAD.unpack_from(packet)
    return exchange_type, raw_token.split(b"\0", 1)[0].decode("latin-1"), ltp
