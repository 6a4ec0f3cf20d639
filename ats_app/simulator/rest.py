"""SmartAPI REST routes: Angel's JSON envelope, its error codes and its non-JSON refusals."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ats_app.simulator import candles
from ats_app.simulator.accounts import strip_bearer
from ats_app.simulator.state import SimState

RATE_LIMIT_TEXT = "Access denied because of exceeding access rate"
AUTH = "/rest/auth/angelbroking"
SECURE = "/rest/secure/angelbroking"

Handler = Callable[[SimState, str, dict[str, Any], Request], Awaitable[Response]]


def ok(data: Any, message: str = "SUCCESS") -> JSONResponse:
    return JSONResponse({"status": True, "message": message, "errorcode": "", "data": data})


def fail(errorcode: str, message: str, http: int = 200) -> JSONResponse:
    return JSONResponse({"status": False, "message": message, "errorcode": errorcode,
                         "data": None}, status_code=http)


def invalid_token(code: str = "AG8001", message: str = "Invalid Token") -> JSONResponse:
    # Angel's API gateway (not its OMS) answers token problems in its own shape, with
    # ``success``/``errorCode`` instead of ``status``/``errorcode``; clients see exactly this.
    return JSONResponse({"success": False, "message": message, "errorCode": code, "data": ""},
                        status_code=403)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


async def _hold(request: Request, ms: int) -> Response:
    """Hold the request until the client gives up (or the hold ends); checking for the
    disconnect keeps a timed-out client from pinning a server task for 30 s."""
    deadline = asyncio.get_running_loop().time() + (ms or 30000) / 1000
    while asyncio.get_running_loop().time() < deadline:
        if await request.is_disconnected():
            break
        await asyncio.sleep(0.05)
    return PlainTextResponse("Gateway Timeout", status_code=504)


async def _fault_response(request: Request, state: SimState, route: str,
                          faults: dict[str, Any]) -> Response | None:
    if "latency" in faults:
        await asyncio.sleep(faults["latency"].ms / 1000.0)
    if "timeout" in faults:
        return await _hold(request, faults["timeout"].ms)
    if "http500" in faults:
        return fail("AB1004", "Something Went Wrong, Please Try After Sometime", 500)
    if "empty" in faults:
        return Response(b"", status_code=200, media_type="application/json")
    if "rate_limit" in faults:
        return PlainTextResponse(RATE_LIMIT_TEXT, status_code=403)
    if "invalid_token" in faults:
        return invalid_token()
    return None


def endpoint(route: str, handler: Handler, *, auth: bool = True, limiter: str | None = None,
             order: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler with faults, token check, rate limit and static-IP check, in that
    order, so each refusal looks the way Angel's gateway produces it."""

    async def run(request: Request) -> Response:
        state: SimState = request.app.state.sim
        state.calls[route] += 1  # tests assert what a client asked for (e.g. no book polls)
        pause = state.pacer.answer_delay(route)  # the latency profile (0 when instant)
        if pause:
            await asyncio.sleep(pause)
        # Whose request it is, before anything else: a fault may be set for one client.
        header = request.headers.get("authorization")
        caller = state.sessions.check(header or "", "jwt", state.clock.epoch()) if (
            auth and strip_bearer(header)) else None
        faults = state.faults.take(route, caller)
        refused = await _fault_response(request, state, route, faults)
        if refused is not None:
            return refused
        body = await _body(request)
        client = ""
        if auth:
            if not strip_bearer(header):
                return invalid_token("AG8003", "Token missing")
            if caller is None:
                return invalid_token()
            client = caller
        # Angel's limits are per client and per endpoint (orderBook and getPosition each 1/s).
        key = f"{client or body.get('clientcode', '')}:{route}"
        if limiter and not state.allow(limiter, key):
            return PlainTextResponse(RATE_LIMIT_TEXT, status_code=403)
        if order:
            ip = state.accounts[client].static_ip
            peer = request.client.host if request.client else ""
            if ip and peer != ip:
                return Response(b"", status_code=400)  # Angel's answer: no body at all
            if "reject" in faults:
                body["__reject__"] = faults["reject"].message or "Order rejected by RMS"
        response = await handler(state, client, body, request)
        if "lost_answer" in faults:  # done, but the client never hears about it
            return await _hold(request, faults["lost_answer"].ms)
        return response

    return run


# --- auth ------------------------------------------------------------------------------------
async def login(state: SimState, _: str, body: dict[str, Any], __: Request) -> Response:
    acct = state.accounts.get(str(body.get("clientcode", "")))
    if acct is None or str(body.get("password", "")) != acct.pin:
        return fail("AB1000", "Invalid clientcode or password")
    if not acct.totp_ok(str(body.get("totp", ""))):
        return fail("AB1050", "Invalid totp")
    tokens = state.sessions.login(acct.client_code, state.clock.epoch())
    return ok({**tokens, "state": None})


async def generate_tokens(state: SimState, _: str, body: dict[str, Any], __: Request) -> Response:
    now = state.clock.epoch()
    result = state.sessions.refresh(str(body.get("refreshToken", "")), now)
    if result is None:
        return fail("AB8050", "Invalid Refresh Token")
    return ok(result[1])


async def profile(state: SimState, client: str, _: dict[str, Any], __: Request) -> Response:
    acct = state.accounts[client]
    return ok({"clientcode": client, "name": acct.name, "email": "", "mobileno": "",
               "exchanges": ["NSE", "BSE", "NFO", "BFO", "MCX", "CDS"],
               "products": ["MARGIN", "MIS", "NRML", "CNC", "CO", "BO"],
               "lastlogintime": "", "broker": ""})


async def logout(state: SimState, client: str, _: dict[str, Any], __: Request) -> Response:
    state.sessions.logout(client, state.clock.epoch())
    return ok("")


# --- orders ----------------------------------------------------------------------------------
async def place_order(state: SimState, client: str, body: dict[str, Any],
                      request: Request) -> Response:
    reject = str(body.pop("__reject__", ""))
    checked = state.orders.validate(body)
    if isinstance(checked, tuple):
        return fail(*checked)
    order = state.orders.place(client, body, checked, forced_reject=reject,
                               source_ip=request.client.host if request.client else "")
    return ok({"script": checked.symbol, "orderid": order.orderid,
               "uniqueorderid": order.uniqueorderid})


async def modify_order(state: SimState, client: str, body: dict[str, Any], _: Request) -> Response:
    order = state.orders.find(client, str(body.get("orderid", "")))
    if order is None:
        return fail("AB1013", "Order not found")
    error = state.orders.modify(order, body)
    if error:
        return fail("AB2000", error)
    return ok({"orderid": order.orderid, "uniqueorderid": order.uniqueorderid})


async def cancel_order(state: SimState, client: str, body: dict[str, Any], _: Request) -> Response:
    order = state.orders.find(client, str(body.get("orderid", "")))
    if order is None:
        return fail("AB1013", "Order not found")
    error = state.orders.cancel(order)
    if error:
        return fail("AB2000", error)
    return ok({"orderid": order.orderid, "uniqueorderid": order.uniqueorderid})


async def order_book(state: SimState, client: str, _: dict[str, Any], __: Request) -> Response:
    rows = [o.book_row() for o in state.orders.for_client(client)]
    return ok(rows or None)  # Angel sends ``data: null``, not ``[]``, for an empty book


async def trade_book(state: SimState, client: str, _: dict[str, Any], __: Request) -> Response:
    rows = [{k: v for k, v in t.items() if k != "client_code"}
            for t in state.orders.trades if t["client_code"] == client]
    return ok(rows or None)


async def order_details(request: Request) -> Response:
    state: SimState = request.app.state.sim
    client = state.sessions.check(request.headers.get("authorization", ""), "jwt",
                                  state.clock.epoch())
    if client is None:
        return invalid_token()
    order = state.orders.find(client, request.path_params["order_id"])
    if order is None:
        return fail("AB1013", "Order not found")
    return ok(order.book_row())


# --- portfolio -------------------------------------------------------------------------------
async def positions(state: SimState, client: str, _: dict[str, Any], __: Request) -> Response:
    rows = [p.row() for p in state.positions.for_client(client)]
    return ok(rows or None)


async def holdings(state: SimState, client: str, _: dict[str, Any], __: Request) -> Response:
    return ok([])


async def all_holdings(state: SimState, client: str, _: dict[str, Any], __: Request) -> Response:
    return ok({"holdings": [], "totalholding": {
        "totalholdingvalue": 0, "totalinvvalue": 0, "totalprofitandloss": 0,
        "totalpnlpercentage": 0}})


async def rms(state: SimState, client: str, _: dict[str, Any], __: Request) -> Response:
    return ok(state.positions.rms(client))


# --- market data -----------------------------------------------------------------------------
async def ltp(state: SimState, _: str, body: dict[str, Any], __: Request) -> Response:
    inst = state.master.get(str(body.get("symboltoken", "")))
    q = state.market.quote(inst.token) if inst else None
    if inst is None or q is None or body.get("exchange") != inst.exch_seg:
        return fail("AB1009", "Symbol Not Found")
    return ok({"exchange": inst.exch_seg, "tradingsymbol": inst.symbol,
               "symboltoken": inst.token, "open": q.open / 100, "high": q.high / 100,
               "low": q.low / 100, "close": q.close / 100, "ltp": q.ltp / 100})


def _quote_row(state: SimState, mode: str, exchange: str, token: str) -> dict[str, Any] | None:
    inst = state.master.get(token)
    q = state.market.quote(token) if inst and inst.exch_seg == exchange else None
    if inst is None or q is None:
        return None
    row: dict[str, Any] = {"exchange": exchange, "tradingSymbol": inst.symbol,
                           "symbolToken": token, "ltp": q.ltp / 100}
    if mode in ("OHLC", "FULL"):
        row.update(open=q.open / 100, high=q.high / 100, low=q.low / 100, close=q.close / 100)
    if mode == "FULL":
        change = (q.ltp - q.close) / 100
        tick = inst.tick_paise
        row.update(
            lastTradeQty=q.last_qty, exchFeedTime=state.clock.now().strftime("%d-%b-%Y %H:%M:%S"),
            exchTradeTime=state.clock.now().strftime("%d-%b-%Y %H:%M:%S"), netChange=change,
            percentChange=round(100 * change / (q.close / 100), 2) if q.close else 0.0,
            avgPrice=(q.open + q.ltp) / 200, tradeVolume=q.volume, opnInterest=0,
            lowerCircuit=q.close * 0.8 / 100, upperCircuit=q.close * 1.2 / 100,
            totBuyQuan=inst.lotsize * 500, totSellQuan=inst.lotsize * 450,
            **{"52WeekLow": q.close * 0.7 / 100, "52WeekHigh": q.close * 1.3 / 100},
            depth={"buy": [{"price": (q.bid - i * tick) / 100, "quantity": inst.lotsize * 5,
                            "orders": 1 + i} for i in range(5)],
                   "sell": [{"price": (q.ask + i * tick) / 100, "quantity": inst.lotsize * 4,
                             "orders": 1 + i} for i in range(5)]})
    return row


async def quote(state: SimState, _: str, body: dict[str, Any], __: Request) -> Response:
    mode = str(body.get("mode", "")).upper()
    tokens = body.get("exchangeTokens")
    if mode not in ("LTP", "OHLC", "FULL") or not isinstance(tokens, dict):
        return fail("AB2000", "Invalid mode or exchangeTokens")
    fetched, unfetched = [], []
    for exchange, toks in tokens.items():
        for tok in toks or []:
            row = _quote_row(state, mode, str(exchange), str(tok))
            if row is None:
                unfetched.append({"exchange": exchange, "symbolToken": str(tok),
                                  "message": "Symbol Not Found", "errorCode": "AB1009"})
            else:
                fetched.append(row)
    return ok({"fetched": fetched, "unfetched": unfetched})


async def search_scrip(state: SimState, _: str, body: dict[str, Any], __: Request) -> Response:
    hits = state.master.search(str(body.get("exchange", "")), str(body.get("searchscrip", "")))
    return ok([{"exchange": i.exch_seg, "tradingsymbol": i.symbol, "symboltoken": i.token}
               for i in hits])


async def candle_data(state: SimState, _: str, body: dict[str, Any], __: Request) -> Response:
    inst = state.master.get(str(body.get("symboltoken", "")))
    if inst is None or body.get("exchange") != inst.exch_seg:
        return fail("AB1009", "Symbol Not Found")
    q = state.market.quote(inst.token)
    anchor = (inst.base_price or (q.ltp / 100 if q else 100.0))
    try:
        rows = candles.generate(state.config.seed, inst.token, anchor, inst.tick_paise,
                                str(body.get("interval", "")), str(body.get("fromdate", "")),
                                str(body.get("todate", "")))
    except ValueError as exc:
        return fail("AB2000", str(exc))
    return ok(rows)


def routes() -> list[Route]:
    table: list[tuple[str, str, Handler, dict[str, Any]]] = [
        (f"{AUTH}/user/v1/loginByPassword", "POST", login, {"auth": False, "limiter": "login"}),
        (f"{AUTH}/jwt/v1/generateTokens", "POST", generate_tokens, {"auth": False}),
        (f"{SECURE}/user/v1/getProfile", "GET", profile, {}),
        (f"{SECURE}/user/v1/logout", "POST", logout, {}),
        (f"{SECURE}/user/v1/getRMS", "GET", rms, {}),
        (f"{SECURE}/order/v1/placeOrder", "POST", place_order, {"limiter": "order", "order": True}),
        (f"{SECURE}/order/v1/modifyOrder", "POST", modify_order,
         {"limiter": "order", "order": True}),
        (f"{SECURE}/order/v1/cancelOrder", "POST", cancel_order,
         {"limiter": "order", "order": True}),
        (f"{SECURE}/order/v1/getOrderBook", "GET", order_book, {"limiter": "book"}),
        (f"{SECURE}/order/v1/getTradeBook", "GET", trade_book, {"limiter": "book"}),
        (f"{SECURE}/order/v1/getPosition", "GET", positions, {"limiter": "book"}),
        (f"{SECURE}/portfolio/v1/getHolding", "GET", holdings, {"limiter": "book"}),
        (f"{SECURE}/portfolio/v1/getAllHolding", "GET", all_holdings, {"limiter": "book"}),
        (f"{SECURE}/order/v1/getLtpData", "POST", ltp, {"limiter": "ltp"}),
        (f"{SECURE}/market/v1/quote", "POST", quote, {"limiter": "quote"}),
        (f"{SECURE}/order/v1/searchScrip", "POST", search_scrip, {}),
        (f"{SECURE}/historical/v1/getCandleData", "POST", candle_data, {}),
    ]
    out = [Route(path, endpoint(path.rsplit("/", 1)[-1], handler, **opts), methods=[method])
           for path, method, handler, opts in table]
    out.append(Route(f"{SECURE}/order/v1/details/{{order_id}}", order_details, methods=["GET"]))
    return out
