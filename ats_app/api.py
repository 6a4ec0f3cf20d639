"""Plain HTTP routes served by the Reflex backend (Starlette): the webhook and health."""

from __future__ import annotations

import asyncio
import logging

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ats_app.engine.core.config import settings
from ats_app.engine.intake import alerts
from ats_app.engine.services import health

log = logging.getLogger("ats.api")

# TradingView gives up on an answer after about 3 s. A body still short of its Content-Length
# after this long comes from no live sender, and waiting for the rest (no server times it
# out) would hold the connection open for as long as the sender likes.
BODY_TIMEOUT_S = 5.0


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it exceeds `limit` (never buffers an unbounded body)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def webhook(request: Request) -> JSONResponse:
    cfg = settings()
    token = request.path_params["token"]
    peer = request.client.host if request.client else None
    source = alerts.client_ip(peer, request.headers.get("x-forwarded-for"), cfg)
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            body = await _read_capped(request, cfg.webhook_max_bytes)
    except ClientDisconnect:
        return JSONResponse({"status": "error", "error": "client disconnected"}, 400)
    except TimeoutError:
        reply = await _receive(token, None, source, body_timeout=BODY_TIMEOUT_S)
        # Closed after the answer: the rest of that body must not be read as the next request.
        return JSONResponse(reply.body, status_code=reply.status_code,
                            headers={"Connection": "close"})
    reply = await _receive(token, body, source)
    return JSONResponse(reply.body, status_code=reply.status_code)


# `alerts.receive` calls still running (an accepted alert's enqueue goes on after its answer
# was sent): held here so the event loop keeps them until they finish.
_running: set[asyncio.Future[alerts.Reply]] = set()


async def _receive(token: str, body: bytes | None, source: str | None,
                   body_timeout: float | None = None) -> alerts.Reply:
    """`alerts.receive` in a thread (its database and Redis calls block), returning as soon as
    it has the answer: for an accepted alert that is its commit, and the job's enqueue
    finishes after the reply is on its way."""
    loop = asyncio.get_running_loop()
    early: asyncio.Future[alerts.Reply] = loop.create_future()

    def settle(reply: alerts.Reply) -> None:
        if not early.done():  # the request may have been cancelled meanwhile
            early.set_result(reply)

    work = asyncio.ensure_future(asyncio.to_thread(
        alerts.receive, token, body, source, body_timeout=body_timeout,
        answer=lambda reply: loop.call_soon_threadsafe(settle, reply)))
    _running.add(work)
    work.add_done_callback(_running.discard)
    await asyncio.wait((early, work), return_when=asyncio.FIRST_COMPLETED)
    if not early.done():
        return work.result()  # refused or ignored: the answer is the return value
    work.add_done_callback(_log_late_failure)
    return early.result()


def _log_late_failure(work: asyncio.Future[alerts.Reply]) -> None:
    if not work.cancelled() and (exc := work.exception()) is not None:
        log.error("accepted alert: its enqueue failed after the answer", exc_info=exc)


async def download(request: Request) -> Response:
    """Stream an export made for a one-time token (see engine.downloads)."""
    from datetime import date

    from ats_app.engine.execution import order_history as orders
    from ats_app.engine.store import downloads
    from ats_app.engine.store.queueing import connection
    from ats_app.exports import orders_in_ist

    job = await asyncio.to_thread(downloads.redeem, connection(), request.path_params["token"])
    if job is None or job["kind"] != "orders":
        return JSONResponse({"status": "error", "error": "unknown or expired download"}, 404)
    p = job["params"]
    f = orders.OrderFilter(
        date_from=date.fromisoformat(p["date_from"]) if p.get("date_from") else None,
        date_to=date.fromisoformat(p["date_to"]) if p.get("date_to") else None,
        strategy_id=p.get("strategy_id"), account_id=p.get("account_id"),
        status=p.get("status"), symbol=p.get("symbol"))
    fmt = p["format"]
    rows = orders_in_ist(orders.iter_orders(job["user_id"], f))
    body = orders.render(rows, fmt)  # a sync generator:
    media = "text/csv" if fmt == "csv" else "application/json"  # Starlette runs it in a thread
    return StreamingResponse(body, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="orders.{fmt}"'})


async def healthz(request: Request) -> JSONResponse:
    status = await asyncio.to_thread(health.check)
    ok = status["database"] and status["redis"]
    return JSONResponse({"ok": ok, **status}, status_code=200 if ok else 503)


def build_api() -> Starlette:
    return Starlette(
        routes=[
            Route("/webhook/{token}", webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        Route("/download/{token}", download, methods=["GET"]),
        ]
    )
