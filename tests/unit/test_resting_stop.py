"""The levels of a stop resting at the broker (`exits.resting_stop`)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ats_app.engine.broker.price_bands import BandKind, sl_limit_refusal
from ats_app.engine.exits.resting_stop import limit_for, trigger_for, worth_moving

T = Decimal("0.05")


@pytest.mark.parametrize(("trigger", "limit"), [
    ("100.00", "95.00"),   # 5 % under the trigger
    ("62.70", "59.55"),    # 59.565 floored to the tick: a sell limit never rounds up
    ("1.00", "0.90"),      # 5 % is a tick: two ticks at least
    ("0.10", "0.05"),      # never under one tick
])
def test_the_limit_sits_a_band_under_the_trigger_on_the_tick_grid(trigger: str,
                                                                   limit: str) -> None:
    assert limit_for(Decimal(trigger), T) == Decimal(limit)


def test_the_limit_stays_inside_the_exchanges_band() -> None:
    # a future's SL-limit band is 3 % over Rs 50: our 5 % would be refused (LPP)
    assert limit_for(Decimal("200.00"), T, BandKind.FUTURE) == Decimal("194.00")
    assert limit_for(Decimal("200.00"), T, BandKind.OPTION) == Decimal("190.00")
    for kind in BandKind:
        trigger = Decimal("123.45")
        assert sl_limit_refusal("SELL", trigger, limit_for(trigger, T, kind), kind) is None


def test_the_trigger_is_the_stop_floored_to_the_grid() -> None:
    assert trigger_for(Decimal("62.73"), T) == Decimal("62.70")
    assert trigger_for(Decimal("62.70"), T) == Decimal("62.70")


def test_a_resting_stop_moves_only_up_and_by_a_tick_at_least() -> None:
    assert worth_moving(6270, 6275, 5)
    assert not worth_moving(6270, 6274, 5)  # less than a tick: not worth a modify
    assert not worth_moving(6270, 6270, 5)
    assert not worth_moving(6270, 6200, 5)  # a stop never moves down
