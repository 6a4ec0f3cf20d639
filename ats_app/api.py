"""Plain HTTP routes served by the Reflex backend (Starlette): health, and later the webhook."""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ats_app.engine import health


async def healthz(request: Request) -> JSONResponse:
    status = await asyncio.to_thread(health.check)
    ok = status["database"] and status["redis"]
    return JSONResponse({"ok": ok, **status}, status_code=200 if ok else 503)


def build_api() -> Starlette:
    return Starlette(routes=[Route("/healthz", healthz, methods=["GET"])])
