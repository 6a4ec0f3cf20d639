"""Injectable faults, set per route through the control API and cleared the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# latency: add ``ms`` before answering; http500: Angel's AB1004 envelope with status 500;
# empty: HTTP 200 with no body; timeout: hold the request ``ms`` (default 30 s) so the client
# times out; invalid_token: AG8001; rate_limit: the plain-text 403; reject: accept orders and
# reject them at the risk check; ws_drop: close the route's open WebSockets;
# lost_answer: process the request (an order IS placed), then hold the answer like timeout —
# the "accepted, but the reply never arrived" case clients must reconcile.
# ``client``: the fault hits only that client code's requests (one account of several);
# without it, every client's.
KINDS = ("latency", "http500", "empty", "timeout", "invalid_token", "rate_limit", "reject",
         "ws_drop", "lost_answer")
ANY_ROUTE = "*"


@dataclass
class Fault:
    route: str
    kind: str
    ms: int = 0
    times: int | None = None  # None: until cleared
    message: str = ""
    client: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"route": self.route, "kind": self.kind, "ms": self.ms, "times": self.times,
                "message": self.message, "client": self.client}


class FaultStore:
    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, spec: dict[str, Any]) -> Fault:
        kind = str(spec.get("kind", ""))
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(KINDS)}")
        times = spec.get("times")
        fault = Fault(route=str(spec.get("route") or ANY_ROUTE), kind=kind,
                      ms=int(spec.get("ms") or 0), times=None if times is None else int(times),
                      message=str(spec.get("message") or ""),
                      client=str(spec["client"]) if spec.get("client") else None)
        # One fault per (route, kind, client): setting it again replaces its settings.
        self._faults = [f for f in self._faults
                        if (f.route, f.kind, f.client) != (fault.route, kind, fault.client)]
        self._faults.append(fault)
        return fault

    def clear(self, route: str | None = None, kind: str | None = None) -> int:
        before = len(self._faults)
        self._faults = [f for f in self._faults
                        if not ((route is None or f.route == route)
                                and (kind is None or f.kind == kind))]
        return before - len(self._faults)

    def list(self) -> list[dict[str, Any]]:
        return [f.as_dict() for f in self._faults]

    def take(self, route: str, client: str | None = None) -> dict[str, Fault]:
        """Faults that apply to one request on ``route`` from ``client``, consuming counted
        ones."""
        out: dict[str, Fault] = {}
        for f in list(self._faults):
            if f.route not in (route, ANY_ROUTE) or f.kind in out:
                continue
            if f.client is not None and f.client != client:
                continue
            out[f.kind] = f
            if f.times is not None:
                f.times -= 1
                if f.times <= 0:
                    self._faults.remove(f)
        return out
