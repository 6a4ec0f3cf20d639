"""Fixtures for the broker tests: the SmartAPI simulator in-process, Redis, credentials.

The simulator helpers come from tests/simulator/sim_kit.py; tests/conftest.py (base_env,
redis_url, database_url) applies here too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis

from ats_app.engine.broker.angel import AngelBroker
from ats_app.engine.broker.factory import limiter_key
from ats_app.engine.broker.ratelimit import RateLimiter
from ats_app.engine.broker.session import AngelSession
from ats_app.engine.tenants.accounts import Credentials
from tests.simulator.fixtures import _sdk_cwd_in_tmp, sim, sim_factory  # noqa: F401
from tests.simulator.sim_kit import API_KEY, CLIENT, PIN, SECRET, Sim


@pytest.fixture
def rds(base_env: dict[str, str], redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def make_creds(sim: Sim, *, account_id: int = 1, proxy: str | None = None,
               secret: str = SECRET, pin: str = PIN, source_ip: str | None = None,
               client: str = CLIENT) -> Credentials:
    return Credentials(account_id=account_id, client_id=client, base_url=sim.base_url,
                       egress_proxy=proxy, api_key=API_KEY, pin=pin, totp_secret=secret,
                       egress_source_ip=source_ip)


class BrokerKit:
    """Builds sessions/brokers on one simulator and Redis, closing them at teardown."""

    def __init__(self, sim: Sim, r: redis.Redis) -> None:
        self.sim, self.redis = sim, r
        self._sessions: list[AngelSession] = []

    def session(self, creds: Credentials | None = None, **kw: Any) -> AngelSession:
        creds = creds or make_creds(self.sim)
        limiter = RateLimiter(self.redis, limiter_key(creds))
        s = AngelSession(creds, self.redis, limiter=limiter, **kw)
        self._sessions.append(s)
        return s

    def broker(self, creds: Credentials | None = None, *, timeout: float = 7.0,
               ip_echo_url: str | None = None, **session_kw: Any) -> AngelBroker:
        s = self.session(creds, timeout=timeout, **session_kw)
        b = AngelBroker(s, RateLimiter(self.redis, limiter_key(s.creds)),
                        ip_echo_url=ip_echo_url)
        b.backoff = (0.05, 0.1, 0.2)  # keep the rate-limit tests fast
        return b

    def close(self) -> None:
        for s in self._sessions:
            s.close()


@pytest.fixture
def kit(sim: Sim, rds: redis.Redis) -> Iterator[BrokerKit]:
    k = BrokerKit(sim, rds)
    yield k
    k.close()


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        # Plain text like api.ipify.org; a SmartAPI-style JSON envelope to JSON clients (the
        # SDK's own GET path), so either kind of caller can see where it came from.
        ip = self.client_address[0]
        as_json = "application/json" in self.headers.get("Accept", "")
        body = json.dumps({"status": True, "ip": ip}).encode() if as_json else ip.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json" if as_json else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def ip_echo() -> Iterator[str]:
    """A local IP-echo service (like api.ipify.org): answers with the caller's address."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(5)
