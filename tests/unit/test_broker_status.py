"""Angel One `orderstatus` strings -> order events."""

from __future__ import annotations

import pytest

from ats_app.engine.broker.status import from_angel_report, from_angel_status, normalise_status
from ats_app.engine.core.fsm import OrderEvent, OrderStatus, apply

E = OrderEvent


@pytest.mark.parametrize(
    ("orderstatus", "event"),
    [
        ("open", E.ACCEPT),
        ("open pending", E.ACCEPT),
        ("validation pending", E.ACCEPT),
        ("put order req received", E.ACCEPT),
        ("after market order req received", E.ACCEPT),
        ("modified", E.ACCEPT),
        ("modify pending", E.ACCEPT),
        ("modify validation pending", E.ACCEPT),
        ("trigger pending", E.TRIGGER),
        ("complete", E.FILL),
        ("rejected", E.REJECT),
        ("cancelled", E.CANCEL),
        ("cancel pending", E.CANCEL_REQUEST),
    ],
)
def test_known_status_maps_to_its_event(orderstatus: str, event: OrderEvent) -> None:
    assert from_angel_status(orderstatus) is event


@pytest.mark.parametrize(
    "orderstatus",
    ["Trigger Pending", "TRIGGER PENDING", "  trigger   pending ", "trigger\tpending"],
)
def test_case_and_spacing_do_not_matter(orderstatus: str) -> None:
    assert from_angel_status(orderstatus) is E.TRIGGER


@pytest.mark.parametrize("orderstatus", ["", "   ", "partially filled", "opened", "completee"])
def test_unknown_status_maps_to_none(orderstatus: str) -> None:
    assert from_angel_status(orderstatus) is None


def test_missing_status_maps_to_none() -> None:
    assert from_angel_status(None) is None  # type: ignore[arg-type]


def test_normalise_status() -> None:
    assert normalise_status(" After  Market Order REQ received\n") == (
        "after market order req received"
    )


@pytest.mark.parametrize(
    ("orderstatus", "filled", "quantity", "event"),
    [
        pytest.param("open", 0, 75, E.ACCEPT, id="open-nothing-filled"),
        pytest.param("open", 25, 75, E.PARTIAL_FILL, id="open-partly-filled"),
        pytest.param("open", 75, 75, E.FILL, id="open-but-all-filled"),
        pytest.param("complete", 75, 75, E.FILL, id="complete"),
        pytest.param("cancelled", 25, 75, E.CANCEL, id="cancelled-after-partial"),
        pytest.param("rejected", 0, 75, E.REJECT, id="rejected"),
        pytest.param("what is this", 25, 75, None, id="unknown-stays-unknown"),
    ],
)
def test_report_reads_partial_fills_from_filled_quantity(
    orderstatus: str, filled: int, quantity: int, event: OrderEvent | None
) -> None:
    assert from_angel_report(orderstatus, filled, quantity) is event


def test_order_book_lifecycle_drives_the_state_machine() -> None:
    status = OrderStatus.SUBMITTING
    for orderstatus in ["open pending", "open", "trigger pending", "open", "complete"]:
        event = from_angel_status(orderstatus)
        assert event is not None
        status = apply(status, event)
    assert status is OrderStatus.FILLED
