"""Pure pricing helpers: Black-Scholes premiums, tick rounding and the quoted spread."""

from __future__ import annotations

import math

RISK_FREE_RATE = 0.065  # roughly the Indian T-bill yield; only needs to be plausible
OPTION_VOL = 0.14  # one fixed implied vol keeps premiums consistent with the underlying
MINUTES_PER_YEAR = 365.0 * 24 * 60


def _norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def black_scholes(
    spot: float, strike: float, years: float, call: bool,
    vol: float = OPTION_VOL, rate: float = RISK_FREE_RATE,
) -> float:
    """European option premium; at or after expiry it is the intrinsic value."""
    if years <= 0 or vol <= 0:
        return max(0.0, spot - strike) if call else max(0.0, strike - spot)
    sqrt_t = math.sqrt(years)
    d1 = (math.log(spot / strike) + (rate + 0.5 * vol * vol) * years) / (vol * sqrt_t)
    d2 = d1 - vol * sqrt_t
    discount = math.exp(-rate * years)
    if call:
        return spot * _norm_cdf(d1) - strike * discount * _norm_cdf(d2)
    return strike * discount * _norm_cdf(-d2) - spot * _norm_cdf(-d1)


def to_paise_on_tick(price: float, tick_paise: int) -> int:
    """Round a rupee price to the nearest tick, returned in paise (the feed's unit)."""
    tick = max(1, tick_paise)
    return max(tick, round(price * 100.0 / tick) * tick)


def spread_ticks(ltp_paise: int, tick_paise: int) -> int:
    """Half-spread in ticks: one tick for cheap contracts, ~0.03% of price for dear ones."""
    tick = max(1, tick_paise)
    return max(1, int(ltp_paise * 0.0003 / tick))


def bid_ask(ltp_paise: int, tick_paise: int) -> tuple[int, int]:
    """Best bid and ask in paise around the last traded price, both on the tick grid."""
    tick = max(1, tick_paise)
    half = spread_ticks(ltp_paise, tick) * tick
    return max(tick, ltp_paise - half), ltp_paise + half
