"""Charge estimates: each component for options and equity, at the configured rates."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ats_app.engine.broker import charges
from ats_app.engine.broker.base import Contract, Product, Side
from ats_app.engine.broker.charges import Segment

D = Decimal


def test_option_buy_pays_stamp_not_stt() -> None:
    # 75 x Rs 100 premium = Rs 7,500 turnover.
    c = charges.estimate(Segment.OPTIONS, Side.BUY, D("100"), 75)
    assert c.brokerage == D("20.00")
    assert c.stt == D("0.00")
    assert c.exchange == D("2.63")  # 7500 x 0.03503% = 2.627
    assert c.sebi == D("0.01")  # 7500 x 0.0001% = 0.0075
    assert c.stamp == D("0.23")  # 7500 x 0.003% = 0.225
    assert c.gst == D("4.07")  # 18% of (20 + 2.62725 + 0.0075) = 4.0743
    assert c.total == D("26.94")


def test_option_sell_pays_stt_not_stamp() -> None:
    c = charges.estimate(Segment.OPTIONS, Side.SELL, D("100"), 75)
    assert (c.stt, c.stamp) == (D("7.50"), D("0.00"))  # 0.1% of premium


@pytest.mark.parametrize(("price", "qty", "brokerage"), [
    pytest.param(D("500"), 10, D("1.50"), id="small-order-pays-0.03pct"),
    pytest.param(D("2500"), 100, D("20.00"), id="large-order-capped-at-20"),
])
def test_equity_intraday_brokerage_is_lower_of_flat_and_pct(price: Decimal, qty: int,
                                                            brokerage: Decimal) -> None:
    c = charges.estimate(Segment.EQUITY_INTRADAY, Side.SELL, price, qty)
    assert c.brokerage == brokerage
    assert c.stt == (price * qty * D("0.00025")).quantize(D("0.01"))


def test_delivery_has_a_minimum_brokerage_and_stt_both_sides() -> None:
    c = charges.estimate(Segment.EQUITY_DELIVERY, Side.BUY, D("100"), 1)
    assert c.brokerage == D("2.00")
    assert c.stt == D("0.10")


def test_zero_quantity_costs_nothing_and_negative_is_refused() -> None:
    assert charges.estimate(Segment.OPTIONS, Side.BUY, D("100"), 0).total == 0
    with pytest.raises(ValueError):
        charges.estimate(Segment.OPTIONS, Side.BUY, D("-1"), 1)


@pytest.mark.parametrize(("exchange", "symbol", "product", "segment"), [
    ("NFO", "NIFTY26NOV2624000CE", Product.INTRADAY, Segment.OPTIONS),
    ("NFO", "BANKNIFTY26NOV26FUT", Product.CARRYFORWARD, Segment.FUTURES),
    ("NSE", "SBIN-EQ", Product.INTRADAY, Segment.EQUITY_INTRADAY),
    ("NSE", "SBIN-EQ", Product.DELIVERY, Segment.EQUITY_DELIVERY),
])
def test_segment_for(exchange: str, symbol: str, product: Product, segment: Segment) -> None:
    contract = Contract(exchange, symbol, "1", 1, D("0.05"))
    assert charges.segment_for(contract, product) == segment


def test_rates_are_one_replaceable_table() -> None:
    zero_brokerage = charges.ChargeRates(
        segments={**charges.ANGEL_NSE_RATES.segments,
                  Segment.OPTIONS: charges.SegmentRates(D("0"), None, D("0"), D("0"),
                                                        D("0.001"), D("0.0003503"),
                                                        D("0.00003"))})
    c = charges.estimate(Segment.OPTIONS, Side.BUY, D("100"), 75, zero_brokerage)
    assert c.brokerage == 0 and c.gst == D("0.47")
