"""Latency profiles: how long the simulator takes to answer, and to fill, like a real broker.

`instant` (the default, for the test suite) answers as fast as it can and fills market
orders on the engine pass that admits them. `angel` paces the simulator like Angel One seen
from a cloud region: order routes 100-300 ms, the order book and its kin ~150 ms, logins and
profile reads 150-300 ms, prices 50-150 ms, and a market order filled 200-500 ms after the
exchange accepted it. Delays are drawn from a seeded generator, so a run can be repeated.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

Range = tuple[int, int]  # milliseconds, inclusive

_ORDER_ROUTES = ("placeOrder", "modifyOrder", "cancelOrder")
_BOOK_ROUTES = ("getOrderBook", "getTradeBook", "getPosition", "getHolding", "getAllHolding")
_SESSION_ROUTES = ("loginByPassword", "generateTokens", "getProfile", "getRMS", "logout")
_PRICE_ROUTES = ("getLtpData", "quote", "searchScrip", "getCandleData")


@dataclass(frozen=True)
class LatencyProfile:
    name: str
    routes: dict[str, Range] = field(default_factory=dict)
    other: Range = (0, 0)  # any route not listed
    fill: Range = (0, 0)  # from "open" (accepted at the exchange) to the fill

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "routes": {k: list(v) for k, v in self.routes.items()},
                "other_ms": list(self.other), "fill_ms": list(self.fill)}


def _each(routes: tuple[str, ...], span: Range) -> dict[str, Range]:
    return dict.fromkeys(routes, span)


PROFILES: dict[str, LatencyProfile] = {
    "instant": LatencyProfile("instant"),
    "angel": LatencyProfile(
        "angel",
        routes={**_each(_ORDER_ROUTES, (100, 300)), **_each(_BOOK_ROUTES, (120, 180)),
                **_each(_SESSION_ROUTES, (150, 300)), **_each(_PRICE_ROUTES, (50, 150))},
        other=(50, 150),
        fill=(200, 500),
    ),
}


def profile(name: str) -> LatencyProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown latency profile {name!r}; expected one of "
                         f"{', '.join(PROFILES)}") from None


class Pacer:
    """The profile in force and the seeded draws from it (one per request or fill)."""

    def __init__(self, name: str = "instant", seed: int = 7) -> None:
        self.profile = profile(name)
        self._rng = random.Random(seed)

    def use(self, name: str) -> LatencyProfile:
        self.profile = profile(name)
        return self.profile

    def _draw(self, span: Range) -> float:
        lo, hi = span
        return 0.0 if hi <= 0 else self._rng.uniform(lo, hi) / 1000.0

    def answer_delay(self, route: str) -> float:
        """Seconds to wait before answering one request on `route`."""
        return self._draw(self.profile.routes.get(route, self.profile.other))

    def fill_delay(self) -> float:
        """Seconds between an order's acceptance and its fill."""
        return self._draw(self.profile.fill)
