"""Closing an SDK websocket (a websocket-client WebSocketApp) from another thread.

Shared by the market-data socket (`feed_socket`) and the order-update socket
(`order_update_stream`): both are stopped by a supervising thread while their reader blocks.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any


def close_from_another_thread(app: Any) -> None:
    """Stop `app.run_forever` now: shutdown() wakes the blocked reader (close() can hang it)."""
    if app is None:
        return
    app.keep_running = False
    sock = getattr(getattr(app, "sock", None), "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
