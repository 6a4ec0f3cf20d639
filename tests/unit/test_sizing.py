"""Order sizing: lots x lot size x multiplier, and quantity checks."""

from __future__ import annotations

import pytest

from ats_app.engine.core.errors import ValidationError
from ats_app.engine.execution.sizing import lots_from_quantity, order_quantity, validate_quantity


@pytest.mark.parametrize(
    ("lots", "lot_size", "multiplier", "quantity"),
    [
        pytest.param(1, 75, 1, 75, id="one-lot"),
        pytest.param(2, 65, 1, 130, id="two-lots"),
        pytest.param(2, 65, 3, 390, id="multiplier"),
        pytest.param(1, 1, 1, 1, id="cash-equity"),
    ],
)
def test_order_quantity(lots: int, lot_size: int, multiplier: int, quantity: int) -> None:
    assert order_quantity(lots, lot_size, multiplier) == quantity


def test_multiplier_defaults_to_one() -> None:
    assert order_quantity(3, 30) == 90


def test_max_lots_allows_exactly_the_maximum() -> None:
    assert order_quantity(2, 75, 5, max_lots=10) == 750


def test_max_lots_counts_lots_after_the_multiplier() -> None:
    with pytest.raises(ValidationError, match=r"11 lots .* maximum of 10") as info:
        order_quantity(1, 75, 11, max_lots=10)
    assert info.value.field == "lots"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"lots": 0}, "lots", id="zero-lots"),
        pytest.param({"lots": -1}, "lots", id="negative-lots"),
        pytest.param({"lots": True}, "lots", id="bool-lots"),
        pytest.param({"lots": 1.5}, "lots", id="float-lots"),
        pytest.param({"lots": "2"}, "lots", id="string-lots"),
        pytest.param({"lot_size": 0}, "lot_size", id="zero-lot-size"),
        pytest.param({"multiplier": 0}, "multiplier", id="zero-multiplier"),
        pytest.param({"max_lots": 0}, "max_lots", id="zero-max-lots"),
    ],
)
def test_order_quantity_refuses_bad_input(kwargs: dict, field: str) -> None:
    args = {"lots": 1, "lot_size": 75, "multiplier": 1} | kwargs
    with pytest.raises(ValidationError) as info:
        order_quantity(**args)
    assert info.value.field == field


def test_lots_from_quantity() -> None:
    assert lots_from_quantity(150, 75) == 2


def test_quantity_not_a_multiple_says_units_versus_lots() -> None:
    with pytest.raises(ValidationError, match="not a multiple of the lot size 75") as info:
        lots_from_quantity(100, 75)
    assert info.value.field == "quantity"


def test_lots_given_as_quantity_is_caught() -> None:
    # A user who meant 2 lots and wrote quantity 2.
    with pytest.raises(ValidationError, match="use lots"):
        validate_quantity(2, 65)


@pytest.mark.parametrize("quantity", [0, -75])
def test_quantity_must_be_positive(quantity: int) -> None:
    with pytest.raises(ValidationError) as info:
        validate_quantity(quantity, 75)
    assert info.value.field == "quantity"


def test_quantity_within_max_lots_passes() -> None:
    validate_quantity(750, 75, max_lots=10)


def test_quantity_above_max_lots_refused() -> None:
    with pytest.raises(ValidationError, match="maximum of 10"):
        validate_quantity(825, 75, max_lots=10)
