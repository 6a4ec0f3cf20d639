"""The ``/sim/...`` control API for tests and demos; no SmartAPI route lives under /sim."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ats_app.simulator.accounts import Account
from ats_app.simulator.clock import IST
from ats_app.simulator.feed import drop_sockets
from ats_app.simulator.state import SimState


def _state(request: Request) -> SimState:
    return request.app.state.sim


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    data = json.loads(raw) if raw else {}
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message}, status_code=400)


async def health(request: Request) -> Response:
    st = _state(request)
    return JSONResponse({"ok": True, "accounts": sorted(st.accounts), "steps": st.market.steps,
                         "instruments": len(st.master.instruments), "calls": dict(st.calls)})


async def price(request: Request) -> Response:
    st = _state(request)
    try:
        body = await _json(request)
    except ValueError as exc:
        return _bad(str(exc))
    token = str(body.get("token", ""))
    if st.master.get(token) is None:
        return _bad(f"unknown token {token!r}")
    if "path" in body and body["path"] is not None:
        path = body["path"]
        if not isinstance(path, list) or not path:
            return _bad("path must be a non-empty list of prices")
        st.market.script(token, [float(p) for p in path], float(body.get("interval_ms", 1000)))
    elif "ltp" in body:
        st.market.pin(token, None if body["ltp"] is None else float(body["ltp"]))
    else:
        return _bad("give 'ltp' (number or null) or 'path' with 'interval_ms'")
    q = st.market.quote(token)
    return JSONResponse({"ok": True, "token": token, "ltp": q.ltp / 100 if q else None,
                         "bid": q.bid / 100 if q else None, "ask": q.ask / 100 if q else None})


async def clock(request: Request) -> Response:
    st = _state(request)
    if request.method == "POST":
        try:
            body = await _json(request)
            at = body.get("at")
            st.clock.set(None if at is None else datetime.fromisoformat(str(at)))
        except ValueError as exc:
            return _bad(str(exc))
    return JSONResponse({"ok": True, "now": st.clock.now().isoformat(), "real": st.clock.is_real})


async def faults(request: Request) -> Response:
    st = _state(request)
    if request.method == "GET":
        return JSONResponse({"ok": True, "faults": st.faults.list(),
                             "profile": st.pacer.profile.as_dict()})
    try:
        body = await _json(request)
    except ValueError as exc:
        return _bad(str(exc))
    if request.method == "DELETE":
        n = st.faults.clear(body.get("route"), body.get("kind"))
        return JSONResponse({"ok": True, "cleared": n})
    if "profile" in body:  # the latency profile: {"profile": "angel"} / {"profile": "instant"}
        try:
            chosen = st.pacer.use(str(body["profile"]))
        except ValueError as exc:
            return _bad(str(exc))
        return JSONResponse({"ok": True, "profile": chosen.as_dict()})
    if body.get("kind") == "ws_drop":
        # Dropping is an action on the sockets open now, not a standing condition.
        n = await drop_sockets(st, str(body.get("route") or "*"))
        return JSONResponse({"ok": True, "dropped": n})
    try:
        fault = st.faults.add(body)
    except ValueError as exc:
        return _bad(str(exc))
    return JSONResponse({"ok": True, "fault": fault.as_dict()})


async def accounts(request: Request) -> Response:
    """Create or update an account: cash (to force margin rejections), static IP, PIN."""
    st = _state(request)
    try:
        body = await _json(request)
    except ValueError as exc:
        return _bad(str(exc))
    code = str(body.get("clientcode", ""))
    acct = st.accounts.get(code)
    if acct is None:
        if not (code and body.get("pin") and body.get("totp_secret")):
            return _bad("new accounts need clientcode, pin and totp_secret")
        acct = st.accounts[code] = Account(code, str(body["pin"]), str(body["totp_secret"]),
                                           None, 1_000_000.0, "Simulated Trader")
    if "pin" in body:
        acct.pin = str(body["pin"])
    if "totp_secret" in body:
        acct.totp_secret = str(body["totp_secret"])
    if "ip" in body:
        acct.static_ip = body["ip"] or None
    if "cash" in body:
        acct.cash = float(body["cash"])
    return JSONResponse({"ok": True, "clientcode": code, "cash": acct.cash,
                         "ip": acct.static_ip})


async def orders(request: Request) -> Response:
    """Every order the simulator holds (optionally one client code's): what a test or a
    benchmark checks "exactly once" against, without logging in as each account."""
    st = _state(request)
    client = request.query_params.get("clientcode")
    rows = [{"clientcode": o.client_code, "orderid": o.orderid, "ordertag": o.ordertag,
             "transactiontype": o.transactiontype, "quantity": o.quantity, "status": o.status,
             "filled": o.filled, "symboltoken": o.inst.token, "tradingsymbol": o.inst.symbol,
             # A resting stop's levels: what a check of "no stop left in the book" reads.
             "variety": o.variety, "ordertype": o.ordertype, "price": o.price,
             "triggerprice": o.triggerprice, "averageprice": o.averageprice, "text": o.text}
            for o in st.orders.orders.values() if client is None or o.client_code == client]
    return JSONResponse({"ok": True, "orders": rows})


async def expire(request: Request) -> Response:
    """End a client's access tokens now (refresh tokens too with ``"refresh": true``)."""
    st = _state(request)
    try:
        body = await _json(request)
    except ValueError as exc:
        return _bad(str(exc))
    n = st.sessions.expire(str(body.get("clientcode", "")), st.clock.epoch(),
                           include_refresh=bool(body.get("refresh")))
    return JSONResponse({"ok": True, "expired": n})


async def quote(request: Request) -> Response:
    st = _state(request)
    q = st.market.quote(request.path_params["token"])
    if q is None:
        return _bad("unknown token")
    return JSONResponse({"token": q.instrument.token, "symbol": q.instrument.symbol,
                         "ltp": q.ltp / 100, "bid": q.bid / 100, "ask": q.ask / 100,
                         "at": datetime.fromtimestamp(q.ts_ms / 1000, IST).isoformat()})


def routes() -> list[Route]:
    return [
        Route("/sim/health", health, methods=["GET"]),
        Route("/sim/price", price, methods=["POST"]),
        Route("/sim/quote/{token}", quote, methods=["GET"]),
        Route("/sim/clock", clock, methods=["GET", "POST"]),
        Route("/sim/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/sim/fault", faults, methods=["GET", "POST", "DELETE"]),
        Route("/sim/accounts", accounts, methods=["POST"]),
        Route("/sim/orders", orders, methods=["GET"]),
        Route("/sim/expire", expire, methods=["POST"]),
    ]
