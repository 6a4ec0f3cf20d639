"""The exchange's SL-limit rules (`broker.price_bands`), shared by paper and the simulator."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ats_app.engine.broker.price_bands import (
    LPP_TEXT,
    BandKind,
    band_kind,
    sl_limit_band,
    sl_limit_refusal,
    stop_triggered,
)

D = Decimal


@pytest.mark.parametrize(("trigger", "kind", "band"), [
    (D("30"), BandKind.OPTION, D("10")),  # small premium: an absolute Rs 10
    (D("50"), BandKind.OPTION, D("10")),
    (D("80"), BandKind.OPTION, D("16.00")),  # 20 % above Rs 50
    (D("123.45"), BandKind.OPTION, D("24.69")),
    (D("40"), BandKind.FUTURE, D("1.5")),
    (D("24050"), BandKind.FUTURE, D("721.50")),  # 3 %
    (D("900"), BandKind.EQUITY, D("27.00")),
    (D("33.33"), BandKind.EQUITY, D("1.5")),
])
def test_band_per_instrument_and_trigger(trigger: Decimal, kind: BandKind,
                                         band: Decimal) -> None:
    assert sl_limit_band(trigger, kind) == band


def test_band_defaults_to_options_and_rounds_down_to_the_paisa() -> None:
    assert sl_limit_band(D("50.07")) == D("10.01")  # 10.014 -> never wider than the rule
    with pytest.raises(ValueError, match="positive"):
        sl_limit_band(D("0"))


def test_band_kind_from_exchange_and_symbol() -> None:
    assert band_kind("NFO", "NIFTY30DEC2624000CE") == BandKind.OPTION
    assert band_kind("bfo", "SENSEX26DEC80000pe") == BandKind.OPTION
    assert band_kind("NFO", "NIFTY30DEC26FUT") == BandKind.FUTURE
    assert band_kind("NSE", "SBIN-EQ") == BandKind.EQUITY


def test_refusals_follow_angels_texts() -> None:
    assert sl_limit_refusal("SELL", D("80"), D("64")) is None  # exactly the band
    too_far = sl_limit_refusal("SELL", D("80"), D("63.95"))
    assert too_far is not None and too_far.startswith(LPP_TEXT)
    assert "Rs 16.00" in too_far and "Rs 64.00" in too_far
    buy = sl_limit_refusal("BUY", D("900"), D("930"), BandKind.EQUITY)
    assert buy is not None and "reducing the limit price to Rs 927.00" in buy
    wrong_side = sl_limit_refusal("SELL", D("80"), D("80.05"))
    assert wrong_side is not None and "greater than or equal to the limit" in wrong_side
    assert sl_limit_refusal("BUY", D("80"), D("79.95")) is not None
    assert sl_limit_refusal("SELL", D("80"), D("80")) is None


def test_a_stop_triggers_when_the_ltp_trades_through() -> None:
    assert not stop_triggered("SELL", D("80.05"), D("80"))
    assert stop_triggered("SELL", D("80"), D("80"))
    assert stop_triggered("SELL", D("70"), D("80"))
    assert not stop_triggered("BUY", D("79.95"), D("80"))
    assert stop_triggered("BUY", D("80.05"), D("80"))
