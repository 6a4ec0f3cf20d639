"""A local HTTP server speaking the two Telegram Bot API methods the control service uses,
getUpdates (long polling, offsets confirming updates) and sendMessage, as Telegram answers
them (`{"ok": true, "result": ...}`; a wrong token is a 401). Tests queue the users' messages
with `say` and read the bot's answers from `sent`."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class BotApiServer:
    def __init__(self, token: str) -> None:
        self.token = token
        self.updates: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self._next_update = 100
        self._next_message = 1
        self._cond = threading.Condition()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> BotApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def say(self, chat_id: int, text: str, *, chat_type: str = "private",
            username: str = "trader") -> int:
        """A user's message, queued for the next getUpdates; its update_id."""
        with self._cond:
            update_id = self._next_update
            self._next_update += 1
            self.updates.append({"update_id": update_id, "message": {
                "message_id": update_id, "date": int(time.time()), "text": text,
                "chat": {"id": chat_id, "type": chat_type},
                "from": {"id": chat_id, "is_bot": False, "first_name": username,
                         "username": username}}})
            self._cond.notify_all()
        return update_id

    def replies_to(self, chat_id: int) -> list[str]:
        return [m["text"] for m in self.sent if int(m["chat_id"]) == chat_id]

    def _get_updates(self, params: dict[str, str]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        wait = float(params.get("timeout") or 0)
        deadline = time.monotonic() + wait
        with self._cond:
            # An offset confirms every update before it: Telegram forgets them.
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
            while not self.updates and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            return list(self.updates)

    def _send_message(self, params: dict[str, str]) -> dict[str, Any]:
        with self._cond:
            message_id = self._next_message
            self._next_message += 1
            self.sent.append({"chat_id": params["chat_id"], "text": params["text"]})
        return {"message_id": message_id, "date": int(time.time()), "text": params["text"],
                "chat": {"id": int(params["chat_id"]), "type": "private"}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _serve(self) -> None:
                url = urlsplit(self.path)
                params = {k: v[-1] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    form = parse_qs(self.rfile.read(length).decode())
                    params.update({k: v[-1] for k, v in form.items()})
                _, bot, method = url.path.split("/", 2)
                server.calls.append(method)
                if bot != f"bot{server.token}":
                    self._answer(401, {"ok": False, "error_code": 401,
                                       "description": "Unauthorized"})
                elif method == "getUpdates":
                    self._answer(200, {"ok": True, "result": server._get_updates(params)})
                elif method == "sendMessage":
                    self._answer(200, {"ok": True, "result": server._send_message(params)})
                else:
                    self._answer(404, {"ok": False, "error_code": 404,
                                       "description": "Not Found"})

            do_GET = _serve
            do_POST = _serve

        return Handler
