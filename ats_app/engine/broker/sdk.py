"""The official SmartAPI SDK client, minus its side effects.

`SmartConnect.__init__` creates `logs/<date>/` in the current directory and attaches a file
handler to logzero's logger; its `_request` logs request headers and parameters (API key,
JWT, and for a failed login the PIN and TOTP) on every failed answer, and opens a new HTTP
connection per call. `AngelClient` keeps every SDK method (routes, parameter handling,
envelopes) and replaces only those two pieces:

- `__init__` sets the same attributes without touching the filesystem (a test compares them
  with what the installed SDK sets, so an SDK upgrade that adds one is noticed);
- `_request` does what the SDK's does, through one keep-alive `requests.Session` per client
  (with the account's proxies, or its connections bound to the account's local source
  address), logs nothing, and puts the HTTP status on the SDK's `DataException.code` so an
  empty-bodied 400 can be told from an empty 200;
- `make_authenticated_get_request` (behind `individual_order_details`) goes through the same
  session: the SDK's own calls a bare `requests.get`, which would leave from the machine's
  default address, outside the account's proxy or source address.

`quiet_sdk_logging()` also disables logzero's logger, so SDK code paths we do not replace
(the WebSocket classes, `placeOrder`'s own error lines) cannot write secrets anywhere.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import socket
import ssl
from typing import Any
from urllib.parse import urljoin

import logzero
import requests
from requests.adapters import HTTPAdapter
from SmartApi import smartExceptions as sdk_errors
from SmartApi.smartConnect import SmartConnect

__all__ = [
    "AngelClient",
    "SourceAddressAdapter",
    "SourceAddressUnavailable",
    "check_source_address",
    "egress_session",
    "proxies_for",
    "quiet_sdk_logging",
]


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


class SourceAddressUnavailable(OSError):
    """The account's source address cannot be bound on this machine: nothing was sent.

    Deliberately not a `requests` error: those are classified as "maybe sent" on order
    routes, and this one is raised before any connection exists."""


def check_source_address(ip: str) -> None:
    """Raise SourceAddressUnavailable unless a socket can be bound to `ip` here.

    Checked when a client is built rather than when the account is saved: the dashboard
    that saves the setting may run on another host or container than the workers that send.
    """
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((ip, 0))
    except OSError as exc:
        why = ("it is not an address of this server"
               if exc.errno == errno.EADDRNOTAVAIL else exc.strerror or str(exc))
        raise SourceAddressUnavailable(
            f"cannot send from local source address {ip}: {why}") from exc


class SourceAddressAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections leave from one local address (`source_address`
    is a urllib3 connection argument; port 0 lets the kernel pick the port)."""

    # HTTPAdapter pickles only the names in __attrs__ and rebuilds its pool manager on
    # unpickling, which needs the address.
    __attrs__ = [*HTTPAdapter.__attrs__, "source_ip"]

    def __init__(self, source_ip: str, **kwargs: Any) -> None:
        self.source_ip = source_ip  # read by init_poolmanager, which super().__init__ calls
        super().__init__(**kwargs)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                         **pool_kwargs: Any) -> None:
        pool_kwargs["source_address"] = (self.source_ip, 0)
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        # Not used by accounts (a proxy and a source address are mutually exclusive), but a
        # proxied request through this adapter must not silently leave from elsewhere.
        proxy_kwargs["source_address"] = (self.source_ip, 0)
        return super().proxy_manager_for(proxy, **proxy_kwargs)


def egress_session(source_ip: str | None = None) -> requests.Session:
    """A `requests.Session` that ignores HTTP(S)_PROXY from the environment (only the
    account's own proxy counts) and, with `source_ip`, binds every connection to it."""
    s = requests.Session()
    s.trust_env = False
    if source_ip:
        adapter = SourceAddressAdapter(source_ip)
        s.mount("http://", adapter)
        s.mount("https://", adapter)
    return s


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The SDK's attribute, built once per process: loading the CA store costs ~10-30 ms of
    CPU, which the SDK paid on every client (requests keeps its own context for the calls)."""
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class AngelClient(SmartConnect):  # type: ignore[misc]
    """`SmartConnect` without the CWD log folder, the secret-logging and the per-call socket."""

    def __init__(self, *, api_key: str, root: str | None = None, timeout: float = 7.0,
                 proxies: dict[str, str] | None = None, source_ip: str | None = None) -> None:
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
        self.ssl_context = _tls_context()
        self.source_ip = source_ip
        if source_ip:
            check_source_address(source_ip)  # a clear error now, not a vague one per call
        self.reqsession = egress_session(source_ip)

    def close(self) -> None:
        self.reqsession.close()

    def make_authenticated_get_request(self, url: str, access_token: str | None) -> Any:
        # The SDK's version: same headers, same answer (the JSON, or None unless HTTP 200),
        # but through this client's session (proxy / source address, keep-alive, timeout).
        headers = self.requestHeaders()
        if access_token:
            headers["Authorization"] = "Bearer " + access_token
        r = self.reqsession.get(url, headers=headers, timeout=self.timeout,
                                proxies=self.proxies)
        return json.loads(r.text) if r.status_code == 200 else None

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
