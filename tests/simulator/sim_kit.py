"""Helpers for driving the simulator through the unmodified official SmartAPI SDK."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import httpx
import pyotp
from SmartApi import SmartConnect
from SmartApi.smartWebSocketOrderUpdate import SmartWebSocketOrderUpdate
from SmartApi.smartWebSocketV2 import SmartWebSocketV2

from ats_app.simulator.clock import IST
from ats_app.simulator.config import AccountSpec, SimConfig
from ats_app.simulator.server import ServerThread

CLIENT, PIN = "T1001", "4321"
SECRET = "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"  # fixed base32 so failures are reproducible
API_KEY = "simkey"


def wait_for(pred: Callable[[], Any], timeout: float = 3.0, step: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    return pred()


def stop_socket_thread(wsapp: Any, thread: threading.Thread) -> None:
    """Stop an SDK socket thread without websocket-client's close() race.

    ``WebSocketApp.close()`` from another thread can swallow the server's close reply and
    then close the fd under a ``select()`` that has no timeout (the SDK passes no
    ping_timeout), leaving the SDK thread blocked forever. Shutting the socket down instead
    wakes that ``select()`` with EOF, and the SDK runs its normal teardown.
    """
    if wsapp is not None:
        wsapp.keep_running = False
        sock = getattr(getattr(wsapp, "sock", None), "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
    thread.join(5)
    assert not thread.is_alive(), "SDK socket thread did not stop"


class Sim:
    def __init__(self, server: ServerThread) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.base_url, timeout=5)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        r = self.http.request(method, path, json=body)
        assert r.status_code == 200, r.text
        return r.json()

    def client(self, client: str = CLIENT, pin: str = PIN, secret: str = SECRET,
               timeout: float | None = None) -> SmartConnect:
        sc = SmartConnect(api_key=API_KEY, root=self.base_url, timeout=timeout)
        sc._rootUrl = self.base_url  # individual_order_details ignores ``root``
        r = sc.generateSession(client, pin, pyotp.TOTP(secret).now())
        assert r["status"] is True, r
        return sc

    def feed(self, sc: SmartConnect, client: str = CLIENT, **kw: Any) -> FeedClient:
        return FeedClient(self.server.ws_url + "/smart-stream", sc, client, **kw)

    def nifty_option(self, strike: int = 26000, kind: str = "CE") -> tuple[str, str]:
        """(symbol, token) of the nearest-expiry NIFTY option at `strike`, from the running
        simulator's master. It is built for the real date, so a written-out expiry (say
        NIFTY01DEC26...) drops out of it once that day has passed."""
        rows = self.http.get("/OpenAPI_File/files/OpenAPIScripMaster.json").json()
        today = datetime.now(IST).date()  # not today's own expiry: priced at intrinsic by 15:30
        options = [r for r in rows if r["name"] == "NIFTY" and r["instrumenttype"] == "OPTIDX"
                   and r["symbol"].endswith(f"{strike}{kind}")
                   and datetime.strptime(r["expiry"], "%d%b%Y").date() > today]
        first = min(options, key=lambda r: datetime.strptime(r["expiry"], "%d%b%Y"))
        return first["symbol"], first["token"]


class FeedClient:
    """The SDK's SmartWebSocketV2 running in a thread, recording what it decodes."""

    def __init__(self, url: str, sc: SmartConnect, client: str, retries: int = 0,
                 retry_delay: float = 0.1) -> None:
        self.ws = SmartWebSocketV2(sc.access_token, API_KEY, client, sc.getfeedToken(),
                                   max_retry_attempt=retries, retry_delay=retry_delay)
        self.ws.ROOT_URI = url
        self.ws.input_request_dict = {}  # the SDK shares this dict across instances
        self.ticks: list[dict[str, Any]] = []
        self.errors: list[tuple[Any, ...]] = []
        self.opened = threading.Event()
        self.ws.on_open = lambda _w: self.opened.set()
        self.ws.on_data = lambda _w, d: self.ticks.append(d)
        self.ws.on_error = lambda *a: self.errors.append(a)
        self.thread = threading.Thread(target=self.ws.connect, daemon=True)

    def start(self, expect_open: bool = True) -> FeedClient:
        self.thread.start()
        if expect_open:
            assert self.opened.wait(5), f"feed did not open: {self.errors}"
        return self

    def tokens(self, since: int = 0) -> set[str]:
        return {t["token"] for t in self.ticks[since:]}

    def close(self) -> None:
        self.ws.MAX_RETRY_ATTEMPT = 0  # otherwise the SDK reconnects after our own close
        stop_socket_thread(self.ws.wsapp, self.thread)


class OrderFeed:
    def __init__(self, sim: Sim, sc: SmartConnect, client: str = CLIENT) -> None:
        self.ws = SmartWebSocketOrderUpdate(sc.access_token, API_KEY, client, sc.getfeedToken())
        self.ws.WEBSOCKET_URI = sim.server.ws_url + "/smart-order-update"
        self.ws.MAX_CONNECTION_RETRY_ATTEMPTS = 0
        self.messages: list[str] = []
        self.opened = threading.Event()
        self.ws.on_open = lambda _w: self.opened.set()
        self.ws.on_message = lambda _w, m: self.messages.append(m)
        self.thread = threading.Thread(target=self.ws.connect, daemon=True)

    def start(self) -> OrderFeed:
        self.thread.start()
        assert self.opened.wait(5)
        return self

    def close(self) -> None:
        stop_socket_thread(self.ws.wsapp, self.thread)


def make_config(**overrides: Any) -> SimConfig:
    base = SimConfig(accounts=[AccountSpec(CLIENT, PIN, SECRET)], engine_interval_ms=20)
    return replace(base, **overrides)


def order(**kw: Any) -> dict[str, Any]:
    params = {"variety": "NORMAL", "tradingsymbol": "SBIN-EQ", "symboltoken": "3045",
              "transactiontype": "BUY", "exchange": "NSE", "ordertype": "MARKET",
              "producttype": "INTRADAY", "duration": "DAY", "price": "0", "quantity": "10"}
    params.update(kw)
    return params
