"""Estimated trading charges per executed order, so paper P&L is not rosier than live.

Pure arithmetic over one table of rates. Rates change (STT and exchange charges were revised
on 1 October 2024; brokers change theirs), so they live only in `ANGEL_NSE_RATES`; pass a
different `ChargeRates` to model another broker or a revision. Each component is rounded to
the paisa; contract notes round some of them (STT, stamp duty) to the rupee, so expect the
estimate to differ from a contract note by a rupee or so per order.

Rates (NSE, Angel One, as published late 2024; check before relying on them):
- brokerage: options and futures a flat Rs 20 per executed order; equity intraday the lower of
  Rs 20 and 0.03% of turnover; equity delivery the lower of Rs 20 and 0.1% (at least Rs 2).
- STT: options 0.1% of premium turnover, sell side; futures 0.02% sell side; equity intraday
  0.025% sell side; delivery 0.1% both sides.
- exchange transaction charges (NSE): options 0.03503% of premium; futures 0.00173%;
  equity 0.00297%.
- SEBI fee: Rs 10 per crore (0.0001%) of turnover, both sides.
- stamp duty, buy side only: options 0.003%; futures 0.002%; intraday 0.003%; delivery 0.015%.
- GST: 18% of brokerage + exchange transaction charges + SEBI fee.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from ats_app.engine.broker.base import Contract, Product, Side

__all__ = ["ANGEL_NSE_RATES", "ChargeRates", "Charges", "Segment", "estimate", "segment_for"]

PAISA = Decimal("0.01")


class Segment(StrEnum):
    OPTIONS = "OPTIONS"
    FUTURES = "FUTURES"
    EQUITY_INTRADAY = "EQUITY_INTRADAY"
    EQUITY_DELIVERY = "EQUITY_DELIVERY"


@dataclass(frozen=True)
class SegmentRates:
    brokerage_flat: Decimal  # Rs per executed order
    brokerage_pct: Decimal | None  # when set, brokerage = min(flat, pct x turnover)
    brokerage_min: Decimal
    stt_buy: Decimal  # fractions of turnover (0.001 = 0.1%)
    stt_sell: Decimal
    exchange: Decimal
    stamp_buy: Decimal


@dataclass(frozen=True)
class ChargeRates:
    segments: dict[Segment, SegmentRates] = field(default_factory=dict)
    sebi: Decimal = Decimal("0.000001")  # Rs 10 per crore
    gst: Decimal = Decimal("0.18")


def _d(text: str) -> Decimal:
    return Decimal(text)


ANGEL_NSE_RATES = ChargeRates(segments={
    Segment.OPTIONS: SegmentRates(_d("20"), None, _d("0"), _d("0"), _d("0.001"),
                                  _d("0.0003503"), _d("0.00003")),
    Segment.FUTURES: SegmentRates(_d("20"), None, _d("0"), _d("0"), _d("0.0002"),
                                  _d("0.0000173"), _d("0.00002")),
    Segment.EQUITY_INTRADAY: SegmentRates(_d("20"), _d("0.0003"), _d("0"), _d("0"),
                                          _d("0.00025"), _d("0.0000297"), _d("0.00003")),
    Segment.EQUITY_DELIVERY: SegmentRates(_d("20"), _d("0.001"), _d("2"), _d("0.001"),
                                          _d("0.001"), _d("0.0000297"), _d("0.00015")),
})


@dataclass(frozen=True)
class Charges:
    brokerage: Decimal
    stt: Decimal
    exchange: Decimal
    sebi: Decimal
    stamp: Decimal
    gst: Decimal

    @property
    def total(self) -> Decimal:
        return self.brokerage + self.stt + self.exchange + self.sebi + self.stamp + self.gst


def segment_for(contract: Contract, product: Product) -> Segment:
    """Options / futures from the symbol on derivative exchanges; equity by product."""
    if contract.exchange.upper() in ("NFO", "BFO", "MCX", "CDS"):
        symbol = contract.tradingsymbol.upper()
        return Segment.OPTIONS if symbol.endswith(("CE", "PE")) else Segment.FUTURES
    if product == Product.DELIVERY:
        return Segment.EQUITY_DELIVERY
    return Segment.EQUITY_INTRADAY


def _paise(value: Decimal) -> Decimal:
    return value.quantize(PAISA, rounding=ROUND_HALF_UP)


def estimate(segment: Segment, side: Side, price: Decimal, quantity: int,
             rates: ChargeRates = ANGEL_NSE_RATES) -> Charges:
    """Charges for one executed order of `quantity` units at `price` (premium for options)."""
    if quantity < 0 or price < 0:
        raise ValueError("price and quantity must not be negative")
    r = rates.segments[segment]
    turnover = price * quantity
    if quantity == 0:
        zero = Decimal("0.00")
        return Charges(zero, zero, zero, zero, zero, zero)
    brokerage = r.brokerage_flat
    if r.brokerage_pct is not None:
        brokerage = max(min(r.brokerage_flat, turnover * r.brokerage_pct), r.brokerage_min)
    buy = side == Side.BUY
    stt = turnover * (r.stt_buy if buy else r.stt_sell)
    exchange = turnover * r.exchange
    sebi = turnover * rates.sebi
    stamp = turnover * r.stamp_buy if buy else Decimal(0)
    gst = (brokerage + exchange + sebi) * rates.gst
    return Charges(brokerage=_paise(brokerage), stt=_paise(stt), exchange=_paise(exchange),
                   sebi=_paise(sebi), stamp=_paise(stamp), gst=_paise(gst))
