"""App assembly and the command line: ``python -m ats_app.simulator --port 9100``."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from datetime import date

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

from ats_app.simulator import control, rest
from ats_app.simulator.config import SimConfig, parse_account
from ats_app.simulator.feed import market_feed, order_updates
from ats_app.simulator.latency import PROFILES
from ats_app.simulator.state import SimState

SCRIP_MASTER_PATH = "/OpenAPI_File/files/OpenAPIScripMaster.json"
log = logging.getLogger("ats_app.simulator")


def build_app(config: SimConfig, start: date | None = None) -> Starlette:
    """The whole simulator as one ASGI app; ``start`` fixes the trading day of the master."""
    state = SimState(config, start)
    master_json = json.dumps(state.master.rows()).encode()

    async def scrip_master(_: Request) -> Response:
        return Response(master_json, media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        state.start()
        try:
            yield
        finally:
            await state.stop()

    app = Starlette(
        routes=[
            *rest.routes(),
            *control.routes(),
            Route(SCRIP_MASTER_PATH, scrip_master, methods=["GET"]),
            WebSocketRoute("/smart-stream", market_feed),
            WebSocketRoute("/smart-order-update", order_updates),
        ],
        lifespan=lifespan,
    )
    app.state.sim = state
    return app


class ServerThread:
    """Runs the simulator on a free port in a background thread (tests, benchmark, demos)."""

    def __init__(self, config: SimConfig, host: str = "127.0.0.1", port: int = 0,
                 start: date | None = None) -> None:
        self.app = build_app(config, start)
        self.server = uvicorn.Server(uvicorn.Config(
            self.app, host=host, port=port, log_level="warning", lifespan="on",
            timeout_graceful_shutdown=1, ws_ping_interval=None))
        self.thread = threading.Thread(target=self.server.run, name="smartapi-sim", daemon=True)
        self.host = host

    @property
    def state(self) -> SimState:
        return self.app.state.sim

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("simulator failed to start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def parse_args(argv: list[str] | None) -> tuple[SimConfig, str, int]:
    p = argparse.ArgumentParser(prog="sim", description="Offline Angel One SmartAPI simulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9100)
    p.add_argument("--account", action="append", default=[], metavar="CLIENT:PIN:TOTP[:IP]",
                   help="an account the simulator accepts (repeatable); none: demo account")
    p.add_argument("--nse-hours", action="store_true",
                   help="keep NSE hours (09:15-15:30 IST weekdays) instead of 24x7")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--feed-interval-ms", type=int, default=100)
    p.add_argument("--latency", choices=sorted(PROFILES), default="instant",
                   help="answer and fill at a broker's pace: angel (orders 100-300 ms, order "
                        "book ~150 ms, fills 200-500 ms after acceptance) or instant")
    args = p.parse_args(argv)
    try:
        accounts = [parse_account(a) for a in args.account]
    except ValueError as exc:
        p.error(str(exc))
    config = SimConfig(accounts=accounts, seed=args.seed, nse_hours=args.nse_hours,
                       feed_interval_ms=args.feed_interval_ms, latency=args.latency)
    return config, args.host, args.port


def main(argv: list[str] | None = None) -> int:
    config, host, port = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not config.accounts:
        demo = config.effective_accounts()[0]
        # Printing the demo secret is deliberate: it is a public, simulator-only credential.
        log.info("demo mode: client %s, PIN %s, TOTP secret %s", demo.client_code, demo.pin,
                 demo.totp_secret)
    log.info("SmartAPI simulator on http://%s:%d (feed ws://%s:%d/smart-stream)%s [latency %s]",
             host, port, host, port, " [NSE hours]" if config.nse_hours else " [24x7]",
             config.latency)
    uvicorn.run(build_app(config), host=host, port=port, log_level="warning",
                timeout_graceful_shutdown=2, ws_ping_interval=None)
    return 0
