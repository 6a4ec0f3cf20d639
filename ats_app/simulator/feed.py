"""The two WebSockets: the SmartWebSocketV2 market feed and the order-update socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from ats_app.simulator import ticks
from ats_app.simulator.accounts import strip_bearer
from ats_app.simulator.market import Quote
from ats_app.simulator.state import SimState
from ats_app.simulator.ticks import Level, TickData

FEED_ROUTE, ORDER_ROUTE = "smart-stream", "smart-order-update"
# The orderData of Angel's AB00 "connected" message: the order-book fields, empty.
EMPTY_ORDER_DATA: dict[str, Any] = {
    **{k: "" for k in ("variety", "ordertype", "ordertag", "producttype", "duration",
                       "tradingsymbol", "transactiontype", "exchange", "symboltoken",
                       "instrumenttype", "optiontype", "expirydate", "filledshares",
                       "unfilledshares", "orderid", "text", "status", "orderstatus",
                       "updatetime", "exchtime", "exchorderupdatetime", "fillid", "filltime",
                       "parentorderid")},
    **{k: 0.0 for k in ("price", "triggerprice", "squareoff", "stoploss", "trailingstoploss",
                        "strikeprice", "averageprice")},
    **{k: "0" for k in ("quantity", "disclosedquantity", "lotsize", "cancelsize")},
}
_SUB_LIMIT_ERROR = {"errorCode": "E1002",
                    "errorMessage": "Invalid Request. Subscription Limit Exceeded"}


def _header(ws: WebSocket, name: str, query: str) -> str:
    return ws.headers.get(name) or ws.query_params.get(query) or ""


def tick_data(q: Quote, exchange_type: int) -> TickData:
    """The Quote/SnapQuote payload for a market snapshot; prices already in paise."""
    tick = max(1, q.instrument.tick_paise)
    lot = q.instrument.lotsize
    bids = tuple(Level(q.bid - i * tick, lot * (5 + i), 1 + i) for i in range(5))
    asks = tuple(Level(q.ask + i * tick, lot * (4 + i), 1 + i) for i in range(5))
    return TickData(
        exchange_type=exchange_type, token=q.instrument.token, sequence=q.sequence,
        exchange_ts_ms=q.ts_ms, ltp=q.ltp, last_qty=q.last_qty,
        avg_price=(q.open + q.high + q.low + q.ltp) // 4, volume=q.volume,
        total_buy_qty=float(sum(b.quantity for b in bids) * 20),
        total_sell_qty=float(sum(a.quantity for a in asks) * 20),
        open=q.open, high=q.high, low=q.low, close=q.close, last_trade_ts_ms=q.ts_ms,
        open_interest=lot * 1000 if q.instrument.exch_seg == "NFO" else 0, bids=bids, asks=asks,
        upper_circuit=q.close * 12 // 10, lower_circuit=q.close * 8 // 10,
        week52_high=q.close * 13 // 10, week52_low=q.close * 7 // 10,
    )


class _Conn:
    """One accepted socket; ``drop`` lets faults and shutdown close it from outside."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.closed = asyncio.Event()

    async def drop(self, code: int = 1011) -> None:
        if not self.closed.is_set():
            self.closed.set()
            with contextlib.suppress(Exception):
                await self.ws.close(code=code)


class FeedConn(_Conn):
    def __init__(self, ws: WebSocket) -> None:
        super().__init__(ws)
        self.subs: dict[tuple[int, str], int] = {}  # (mode, token) -> exchange type


def _apply_request(conn: FeedConn, msg: dict[str, Any], limit: int) -> dict[str, Any] | None:
    """Apply a subscribe/unsubscribe frame; returns an error frame to send back, if any."""
    action, params = msg.get("action"), msg.get("params") or {}
    mode = int(params.get("mode", 0))
    if action not in (0, 1) or mode not in (1, 2, 3):
        return {"correlationID": msg.get("correlationID", ""), "errorCode": "E1001",
                "errorMessage": "Invalid Request Payload."}
    wanted = [(mode, str(tok), int(group.get("exchangeType", 1)))
              for group in params.get("tokenList") or [] for tok in group.get("tokens") or []]
    if action == 0:
        for mode_, tok, _ in wanted:
            conn.subs.pop((mode_, tok), None)
        return None
    new = {(m, t) for m, t, _ in wanted} - conn.subs.keys()
    if len({t for _, t in conn.subs} | {t for _, t in new}) > limit:
        return {"correlationID": msg.get("correlationID", ""), **_SUB_LIMIT_ERROR}
    for mode_, tok, exch in wanted:
        conn.subs[(mode_, tok)] = exch
    return None


async def _feed_sender(state: SimState, conn: FeedConn) -> None:
    interval = state.config.feed_interval_ms / 1000.0
    market = state.market
    next_at = time.monotonic()
    while not conn.closed.is_set():
        for (mode, token), exch in list(conn.subs.items()):
            q = market.quote(token)
            if q is None:
                continue  # Angel stays silent about tokens it does not know
            if mode == ticks.LTP_MODE:
                packet = ticks.encode_ltp(exch, token, q.sequence, q.ts_ms, q.ltp)
            else:
                packet = ticks.encode(mode, tick_data(q, exch))
            await conn.ws.send_bytes(packet)
        # Fixed-rate schedule; if a round overran, start the next at once instead of
        # accumulating debt, so a slow client sees fresh prices rather than a backlog.
        next_at = max(next_at + interval, time.monotonic())
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def market_feed(ws: WebSocket) -> None:
    state: SimState = ws.app.state.sim
    client = _header(ws, "x-client-code", "clientCode")
    now = state.clock.epoch()
    feed_ok = state.sessions.check(_header(ws, "x-feed-token", "feedToken"), "feed", now)
    jwt = _header(ws, "authorization", "jwt")
    jwt_ok = state.sessions.check(jwt, "jwt", now) if jwt else client
    if not client or feed_ok != client or jwt_ok != client:
        await ws.close(code=1008)  # before accept: the handshake is refused with HTTP 403
        return
    conns = state.feed_conns[client]
    if len(conns) >= state.config.max_ws_per_client:
        await ws.close(code=1008)  # Angel's cap: 3 feed connections per client code
        return
    conn = FeedConn(ws)
    conns.add(conn)
    await ws.accept()
    sender = asyncio.create_task(_feed_sender(state, conn))
    try:
        while True:
            text = await ws.receive_text()
            if text.strip().lower() == "ping":
                await ws.send_text("pong")
                continue
            try:
                msg = json.loads(text)
                error = _apply_request(conn, msg, state.config.max_tokens_per_ws)
            except (ValueError, TypeError, AttributeError):
                error = {"correlationID": "", "errorCode": "E1001",
                         "errorMessage": "Invalid Request Payload."}
            if error:
                await ws.send_text(json.dumps(error))
    except (WebSocketDisconnect, RuntimeError, KeyError):
        pass  # client went away, or we dropped it (a fault or shutdown)
    finally:
        conn.closed.set()
        conns.discard(conn)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender


async def order_updates(ws: WebSocket) -> None:
    state: SimState = ws.app.state.sim
    client = state.sessions.check(strip_bearer(ws.headers.get("authorization")), "jwt",
                                  state.clock.epoch())
    claimed = ws.headers.get("x-client-code")
    if client is None or (claimed and claimed != client):
        await ws.close(code=1008)
        return
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    conn = _Conn(ws)
    state.order_listeners[client].add(queue)
    state.order_conns[client].add(conn)
    await ws.accept()

    async def pump() -> None:
        # AB00 is Angel's "connected" message (its orderData: every field, all empty);
        # order events follow as they happen.
        await ws.send_text(json.dumps({"user-id": client, "status-code": "200",
                                       "order-status": "AB00", "error-message": "",
                                       "orderData": EMPTY_ORDER_DATA}))
        while True:
            await ws.send_text(json.dumps(await queue.get()))

    sender = asyncio.create_task(pump())
    try:
        while True:
            text = await ws.receive_text()
            if text.strip().lower() == "ping":
                await ws.send_text("pong")
    except (WebSocketDisconnect, RuntimeError, KeyError):
        pass
    finally:
        conn.closed.set()
        state.order_listeners[client].discard(queue)
        state.order_conns[client].discard(conn)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender


async def drop_sockets(state: SimState, route: str) -> int:
    """The ``ws_drop`` fault: close every open socket on the route (``*`` for both)."""
    groups = []
    if route in (FEED_ROUTE, "*"):
        groups.append(state.feed_conns)
    if route in (ORDER_ROUTE, "*"):
        groups.append(state.order_conns)
    n = 0
    for group in groups:
        for conns in group.values():
            for conn in list(conns):
                await conn.drop()
                n += 1
    return n
