"""The official SmartAPI SDK client, minus its side effects.

`SmartConnect.__init__` creates `logs/<date>/` in the current directory and attaches a file
handler to logzero's logger; its `_request` logs request headers and parameters (API key,
JWT, and for a failed login the PIN and TOTP) on every failed answer, and opens a new HTTP
connection per call. `AngelClient` keeps every SDK method (routes, parameter handling,
envelopes) and replaces only those two pieces:

- `__init__` sets the same attributes without touching the filesystem (a test compares them
  with what the installed SDK sets, so an SDK upgrade that adds one is noticed);
- `_request` does what the SDK's does, through one keep-alive `requests.Session` per client
  (with the account's proxies), logs nothing, and puts the HTTP status on the SDK's
  `DataException.code` so an empty-bodied 400 can be told from an empty 200.

`quiet_sdk_logging()` also disables logzero's logger, so SDK code paths we do not replace
(the WebSocket classes, `placeOrder`'s own error lines) cannot write secrets anywhere.
"""

from __future__ import annotations

import json
import logging
import ssl
from typing import Any
from urllib.parse import urljoin

import logzero
import requests
from SmartApi import smartExceptions as sdk_errors
from SmartApi.smartConnect import SmartConnect

__all__ = ["AngelClient", "proxies_for", "quiet_sdk_logging"]


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


class _StripQuery(logging.Filter):
    """urllib3 logs request lines at DEBUG; the SDK sends GET parameters (getProfile's refresh
    token) JSON-encoded in the query string, so cut every query string off."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(a.split("?", 1)[0] if isinstance(a, str) else a
                                for a in record.args)
        return True


_quieted = False


def quiet_sdk_logging() -> None:
    """Silence the SDK's logzero logger for good and drop its file handlers. Idempotent."""
    global _quieted
    if _quieted:
        return
    lg = logging.getLogger(logzero.LOGZERO_DEFAULT_LOGGER)
    lg.disabled = True  # handlers added later (the WebSocket classes add some) get nothing
    lg.addFilter(_DropAll())
    for handler in list(lg.handlers):
        if isinstance(handler, logging.FileHandler):
            lg.removeHandler(handler)
            handler.close()
    logging.getLogger("urllib3.connectionpool").addFilter(_StripQuery())
    _quieted = True


def proxies_for(egress_proxy: str | None) -> dict[str, str]:
    """The `requests` proxies mapping for an account's egress proxy (both schemes)."""
    if not egress_proxy:
        return {}
    return {"http": egress_proxy, "https": egress_proxy}


class AngelClient(SmartConnect):  # type: ignore[misc]
    """`SmartConnect` without the CWD log folder, the secret-logging and the per-call socket."""

    def __init__(self, *, api_key: str, root: str | None = None, timeout: float = 7.0,
                 proxies: dict[str, str] | None = None) -> None:
        # Deliberately not SmartConnect.__init__ (see the module docstring); same attributes.
        quiet_sdk_logging()
        self.debug = False
        self.api_key = api_key
        self.session_expiry_hook = None
        self.disable_ssl = False
        self.access_token: str | None = None
        self.refresh_token: str | None = None
        self.feed_token: str | None = None
        self.userId: str | None = None
        self.proxies = dict(proxies or {})
        self.root = root or self._rootUrl
        if root:
            self._rootUrl = root  # individual_order_details builds its URL from _rootUrl
        self.timeout = timeout
        self.Authorization = None
        self.clientLocalIP = self.clientLocalIp
        self.clientPublicIP = self.clientPublicIp
        self.clientMacAddress = self.clientMacAddress
        self.privateKey = api_key
        self.accept = self.accept
        self.userType = self.userType
        self.sourceID = self.sourceID
        self.ssl_context = ssl.create_default_context()
        self.ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.reqsession = requests.Session()
        self.reqsession.trust_env = False  # only the account's own proxy, never HTTP(S)_PROXY

    def close(self) -> None:
        self.reqsession.close()

    def _request(self, route: str, method: str, parameters: dict[str, Any] | None = None) -> Any:
        params = dict(parameters) if parameters else {}
        url = urljoin(self.root, self._routes[route].format(**params))
        headers = self.requestHeaders()
        if self.access_token:
            headers["Authorization"] = f"Bearer {self.access_token}"
        body = json.dumps(params)
        r = self.reqsession.request(
            method, url,
            data=body if method in ("POST", "PUT") else None,
            params=body if method in ("GET", "DELETE") else None,
            headers=headers, allow_redirects=True, timeout=self.timeout, proxies=self.proxies)
        try:
            data = json.loads(r.content.decode("utf8"))
        except ValueError:
            # The SDK's own message, so callers match the same text either way; plus the status.
            raise sdk_errors.DataException(
                f"Couldn't parse the JSON response received from the server: {r.content!r}",
                code=r.status_code) from None
        if isinstance(data, dict) and data.get("error_type"):
            exc_class = getattr(sdk_errors, data["error_type"], sdk_errors.GeneralException)
            raise exc_class(data.get("message", ""), code=r.status_code)
        return data
