"""Simulator settings and the ``--account CLIENT:PIN:TOTP_SECRET[:IP]`` parser."""

from __future__ import annotations

from dataclasses import dataclass, field

# A fixed, valid base32 secret for the demo account so a newcomer can type it into an
# authenticator app or into the project's account form; it guards nothing real.
DEMO_TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@dataclass(frozen=True)
class AccountSpec:
    client_code: str
    pin: str
    totp_secret: str
    static_ip: str | None = None  # None: orders accepted from any address
    cash: float = 1_000_000.0
    name: str = "Simulated Trader"


def parse_account(text: str) -> AccountSpec:
    """Parse ``CLIENT:PIN:TOTP_SECRET[:IP]``; IPv6 addresses may follow the third colon."""
    parts = text.split(":", 3)
    if len(parts) < 3 or not all(parts[:3]):
        raise ValueError(f"--account must be CLIENT:PIN:TOTP_SECRET[:IP], got {text!r}")
    ip = parts[3] if len(parts) == 4 and parts[3] else None
    return AccountSpec(client_code=parts[0], pin=parts[1], totp_secret=parts[2], static_ip=ip)


def demo_account() -> AccountSpec:
    return AccountSpec(client_code="SIM0001", pin="1234", totp_secret=DEMO_TOTP_SECRET)


@dataclass
class SimConfig:
    accounts: list[AccountSpec] = field(default_factory=list)
    seed: int = 7
    nse_hours: bool = False
    # Feed cadence: every subscribed token gets one packet per interval (100 ms -> 10/s/token).
    feed_interval_ms: int = 100
    # How often the random walk advances and the order engine matches / runs risk checks.
    engine_interval_ms: int = 50
    # How fast it answers and fills (`latency.PROFILES`): "instant" for tests, "angel" for
    # benchmarks and demos that should feel like the real broker.
    latency: str = "instant"
    jwt_ttl_s: float = 24 * 3600.0
    refresh_ttl_s: float = 48 * 3600.0
    max_ws_per_client: int = 3
    max_tokens_per_ws: int = 1000
    strikes_each_side: int = 20
    # Rate limits as (count, window seconds); Angel's published numbers by default.
    order_limits: tuple[tuple[int, float], ...] = ((20, 1.0), (500, 60.0), (1000, 3600.0))
    login_limits: tuple[tuple[int, float], ...] = ((1, 1.0),)
    book_limits: tuple[tuple[int, float], ...] = ((1, 1.0),)
    ltp_limits: tuple[tuple[int, float], ...] = ((10, 1.0),)
    quote_limits: tuple[tuple[int, float], ...] = ((10, 1.0),)

    def effective_accounts(self) -> list[AccountSpec]:
        """With no accounts given the simulator runs in demo mode with one known account."""
        return list(self.accounts) or [demo_account()]
