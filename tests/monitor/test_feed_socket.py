"""FeedSocket's fast LTP decoding agrees with the SDK's parser; other packets still use it."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest
from SmartApi.smartWebSocketV2 import SmartWebSocketV2

from ats_app.engine.broker.feed_socket import FeedSocket, decode_ltp
from ats_app.simulator import ticks
from ats_app.simulator.ticks import TickData


def _socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FeedSocket:
    monkeypatch.chdir(tmp_path)  # anything the SDK might write stays in tmp
    return FeedSocket(url="ws://x/smart-stream", jwt="j", api_key="k", client_code="c",
                      feed_token="f")


def test_fast_ltp_decoding_matches_the_sdk(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    sdk = _socket(tmp_path, monkeypatch)  # its inherited _parse_binary_data is the SDK's
    rng = random.Random(3)
    for _ in range(2000):
        token = str(rng.choice([rng.randint(1, 99), rng.randint(1000, 99_999_999)]))
        if rng.random() < 0.1:
            token = "X" * rng.randint(1, 25)  # the longest tokens fill the field, no NUL
        exch, ltp = rng.choice([1, 2, 3, 4, 5, 7, 13]), rng.randint(0, 10**12)
        packet = ticks.encode_ltp(exch, token, rng.randint(0, 10**9), 1_764_061_200_000, ltp)
        parsed = SmartWebSocketV2._parse_binary_data(sdk, packet)
        assert decode_ltp(packet) == (parsed["exchange_type"], parsed["token"],
                                      parsed["last_traded_price"])


def test_ltp_packets_take_the_fast_path_and_others_the_sdk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = _socket(tmp_path, monkeypatch)
    fast: list[tuple[int, str, int]] = []
    slow: list[dict[str, Any]] = []
    ws.on_data = lambda _app, msg: slow.append(msg)
    ltp = ticks.encode_ltp(2, "43650", 1, 1_764_061_200_000, 10235)
    quote = ticks.encode(ticks.QUOTE_MODE, TickData(exchange_type=1, token="3045", sequence=2,
                                                    exchange_ts_ms=1_764_061_200_000,
                                                    ltp=90000))
    ws._on_data(None, ltp, 2, True)  # no on_ltp yet: the SDK's dict, as before
    ws.on_ltp = lambda *t: fast.append(t)
    ws._on_data(None, ltp, 2, True)
    ws._on_data(None, quote, 2, True)
    ws._on_data(None, "pong", 1, True)
    assert fast == [(2, "43650", 10235)]
    assert [(m["subscription_mode"], m["token"], m["last_traded_price"]) for m in slow] == \
        [(1, "43650", 10235), (2, "3045", 90000)]


def test_on_drained_fires_only_when_no_further_frame_is_ready(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    from types import SimpleNamespace

    ws = _socket(tmp_path, monkeypatch)
    ours, server = socket.socketpair()
    ws.wsapp = SimpleNamespace(sock=SimpleNamespace(sock=ours))  # websocket-client's layout
    got: list[tuple[int, str, int]] = []
    drained: list[int] = []
    ws.on_ltp = lambda *t: got.append(t)
    ws.on_drained = lambda: drained.append(len(got))
    packet = ticks.encode_ltp(2, "43650", 1, 1_764_061_200_000, 10235)
    try:
        server.sendall(b"\x82\x33")  # the next frame's first bytes are already here
        time.sleep(0.05)
        ws._on_data(None, packet, 2, True)
        assert got and drained == []  # the reader will call again at once: keep batching
        ours.recv(16)
        ws._on_data(None, packet, 2, True)
        assert drained == [2]  # nothing more to read: the end of the burst
        ws._on_data(None, "pong", 1, True)
        ws._on_data(None, '{"errorCode": "E1002"}', 1, True)
        assert drained == [2, 2, 2]  # a text frame can end a burst too
        ws._on_pong(None, b"")
        ws._on_ping(None, b"")
        assert drained == [2, 2, 2, 2, 2]  # and so can a control frame
    finally:
        ours.close()
        server.close()


def test_close_takes_websocket_clients_arguments(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """websocket-client calls on_close(app, status code, message); the SDK's handler took
    only the app, so each close raised (and logged) a TypeError instead of reaching ours."""
    ws = _socket(tmp_path, monkeypatch)
    closed: list[Any] = []
    ws.on_close = closed.append
    ws._on_close("app", 1000, "bye")
    assert closed == ["app"]
