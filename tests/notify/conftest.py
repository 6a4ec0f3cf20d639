"""Real notification receivers for the notify tests, and a real RQ worker on `notifications`.

- `smtp_sink`: an aiosmtpd server on a free port that insists on AUTH (over plain SMTP,
  since there is no TLS), so a delivered e-mail proves the stored password was decrypted.
- `http_sink`: a stdlib HTTP server taking Apprise's json:// and form:// posts; `mode`
  switches it to answering 500 ("down") or back to 200.
- `notify_worker`: `rq worker notifications --with-scheduler` as a subprocess (the scheduler
  moves retried jobs back to the queue after their back-off).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

import ats_app.engine.store.models  # noqa: F401 - registers the tables on SQLModel.metadata
from ats_app.engine.services.embedded_redis import free_port

ROOT = Path(__file__).resolve().parents[2]
SMTP_USER, SMTP_PASSWORD = "ats-bot", "smtp-Pa55-w0rd-9f3k"
HTTP_USER, HTTP_PASSWORD = "hookuser", "http-S3cret-7q2z"


def wait_for(predicate: Callable[[], object], timeout: float = 15, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.05)


@dataclass
class Mail:
    subject: str
    body: str
    mail_from: str
    rcpt_tos: list[str]
    authenticated: bool


@dataclass
class SmtpSink:
    port: int
    messages: list[Mail] = field(default_factory=list)

    def url(self, to: str = "trader@example.com") -> str:
        # mailto:// (not mailtos://) is plain SMTP: Apprise picks its "insecure" mode, and the
        # explicit port overrides the default 25.
        return (
            f"mailto://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{self.port}"
            f"?from=bot@ats.test&to={to}"
        )


class _MailHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server, session, envelope) -> str:
        msg = message_from_bytes(envelope.original_content, policy=policy.default)
        part = msg.get_body(preferencelist=("plain",))
        self.sink.messages.append(
            Mail(
                subject=str(msg["subject"]),
                # SMTP lines end in CRLF; compare texts as written.
                body=part.get_content().replace("\r\n", "\n") if part is not None else "",
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                authenticated=bool(session.authenticated),
            )
        )
        return "250 OK"


def _authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok)


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink(port=free_port())
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # its AUTH-without-TLS warnings
    with warnings.catch_warnings():  # "AUTH without TLS": deliberate for a local test server
        warnings.simplefilter("ignore", UserWarning)
        controller = _controller(sink)
        controller.start()
    yield sink
    controller.stop()


def _controller(sink: SmtpSink) -> Controller:
    return Controller(
        _MailHandler(sink),
        hostname="127.0.0.1",
        port=sink.port,
        authenticator=_authenticator,
        auth_required=True,  # mail without the right password is refused
        auth_require_tls=False,  # local test server: no TLS
    )


@dataclass
class Post:
    path: str
    auth: str | None
    data: dict


@dataclass
class HttpSink:
    port: int
    posts: list[Post] = field(default_factory=list)  # accepted
    refused: list[Post] = field(default_factory=list)  # answered 500 while "down"
    mode: str = "ok"  # ok | down (500)

    def url(self, path: str = "/hook", scheme: str = "json") -> str:
        return f"{scheme}://{HTTP_USER}:{HTTP_PASSWORD}@127.0.0.1:{self.port}{path}"

    @property
    def attempts(self) -> int:
        return len(self.posts) + len(self.refused)

    def on(self, path: str) -> list[Post]:
        return [p for p in self.posts if p.path == path]

    def titles(self, posts: list[Post] | None = None) -> list[str]:
        return [p.data.get("title", "") for p in (self.posts if posts is None else posts)]


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    sink = HttpSink(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            if self.headers.get("Content-Type", "").startswith("application/json"):
                data = json.loads(raw)
            else:
                data = {k: v[0] for k, v in parse_qs(raw).items()}
            auth = self.headers.get("Authorization")
            if auth and auth.startswith("Basic "):
                auth = base64.b64decode(auth[6:]).decode()
            if sink.mode != "ok":
                sink.refused.append(Post(self.path, auth, data))
                self.send_response(500)
                self.end_headers()
                return
            sink.posts.append(Post(self.path, auth, data))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield sink
    server.shutdown()
    server.server_close()


@pytest.fixture
def notify_env(database_url: str, redis_url: str) -> dict[str, str]:
    """Database + Redis configured in os.environ (what the worker subprocess inherits)."""
    return {"DATABASE_URL": database_url, "REDIS_URL": redis_url}


# The worker's parent imports the job's module first, so every forked work-horse starts with
# Apprise and the database layer loaded (as a production worker that imports its jobs would).
_WORKER = """
import sys
import ats_app.engine.notify.notices
ats_app.engine.notify.notices.preload()
from redis import Redis
from rq import Queue, Worker
conn = Redis.from_url(sys.argv[1])
Worker([Queue("notifications", connection=conn)], connection=conn).work(with_scheduler=True)
"""


@pytest.fixture
def notify_worker(notify_env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen]:
    """A real RQ worker (forking work-horses, with the scheduler that runs retries).

    Its log (RQ at INFO, Apprise's warnings) must never show a target's secrets.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log_path = tmp_path / "notify-worker.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER, notify_env["REDIS_URL"]],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    text = log_path.read_text(errors="replace")
    if os.environ.get("NOTIFY_DEBUG"):
        print(text[-5000:])
    assert "send_job" in text  # the log was written, so the check below means something
    for secret in (SMTP_PASSWORD, HTTP_PASSWORD):
        assert secret not in text
