"""The exchange's rules for stop-loss limit (SL-L) orders, shared by paper trading and the
SmartAPI simulator so both refuse and trigger exactly alike. Pure: no I/O.

Limit Price Protection for SL-L orders (NSE circulars for the cash and F&O segments, enforced
by Angel One on new orders and on modifications): the distance between an SL-L order's limit
price and its trigger price may not exceed a band that depends on the instrument and the
trigger price:

    instrument                     trigger <= Rs 50     trigger > Rs 50
    stock / index options          Rs 10                20 % of the trigger
    stock / index futures          Rs 1.50              3 % of the trigger
    equity (cash segment)          Rs 1.50              3 % of the trigger

Beyond it the order is rejected with "Difference between limit price and trigger price for SL
Limit Order is beyond the exchange's Permissible range ...". `sl_limit_band` is that exchange
band, the outer bound: our own stops pick their limit inside it. The options row is the one
that matters for index options (a Rs 80 premium may have its limit up to Rs 16 below its
trigger), and it is wide because option premiums gap.

The exchange also wants the limit on the protective side of the trigger: a SELL stop's limit
at or below its trigger, a BUY stop's at or above it.

A stop triggers when the last traded price trades through the trigger (SELL: LTP <= trigger,
BUY: LTP >= trigger) and from then on is an ordinary LIMIT order at its limit price.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum

__all__ = ["LPP_TEXT", "BandKind", "band_kind", "sl_limit_band", "sl_limit_refusal",
           "stop_triggered"]

_SMALL = Decimal(50)  # trigger prices at or below this get an absolute band
_PCT = {"OPTION": Decimal("0.20"), "FUTURE": Decimal("0.03"), "EQUITY": Decimal("0.03")}
_MIN = {"OPTION": Decimal("10"), "FUTURE": Decimal("1.5"), "EQUITY": Decimal("1.5")}
_PAISA = Decimal("0.01")

LPP_TEXT = ("Difference between limit price and trigger price for SL Limit Order is beyond "
            "the exchange's Permissible range")


class BandKind(StrEnum):
    OPTION = "OPTION"
    FUTURE = "FUTURE"
    EQUITY = "EQUITY"


def band_kind(exchange: str, tradingsymbol: str) -> BandKind:
    """Options and futures by symbol on the derivative exchanges; everything else equity."""
    if exchange.upper() in ("NFO", "BFO", "MCX", "CDS"):
        return BandKind.OPTION if tradingsymbol.upper().endswith(("CE", "PE")) \
            else BandKind.FUTURE
    return BandKind.EQUITY


def sl_limit_band(trigger: Decimal, kind: BandKind = BandKind.OPTION) -> Decimal:
    """The widest distance (rupees, to the paisa, never rounded up) the exchange allows
    between an SL-L order's limit and its `trigger`. Index options by default."""
    if trigger <= 0:
        raise ValueError(f"trigger price must be positive, got {trigger}")
    if trigger <= _SMALL:
        return _MIN[kind.value]
    return (trigger * _PCT[kind.value]).quantize(_PAISA, rounding=ROUND_FLOOR)


def sl_limit_refusal(side: str, trigger: Decimal, limit: Decimal,
                     kind: BandKind = BandKind.OPTION) -> str | None:
    """Why the exchange refuses an SL-L order (`side` "BUY"/"SELL"), or None when it is fine.
    The texts follow Angel's rejection messages."""
    sell = side.upper() == "SELL"
    if (limit > trigger) if sell else (limit < trigger):
        return (f"Trigger price should be {'greater' if sell else 'less'} than or equal to "
                f"the limit price for a {'sell' if sell else 'buy'} SL Limit Order")
    band = sl_limit_band(trigger, kind)
    if abs(trigger - limit) <= band:
        return None
    bound = trigger - band if sell else trigger + band
    return (f"{LPP_TEXT} of Rs {band:.2f}. Consider "
            f"{'raising' if sell else 'reducing'} the limit price to Rs {bound:.2f}.")


def stop_triggered(side: str, ltp: Decimal, trigger: Decimal) -> bool:
    """Has the last traded price reached a stop's trigger? SELL stops below the market,
    BUY stops above it."""
    return ltp <= trigger if side.upper() == "SELL" else ltp >= trigger
