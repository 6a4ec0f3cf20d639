"""Message formatting per event: pure, so checked without any server."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ats_app.engine.notify.messages import Event, format_message, rupees

FILL = {"side": "buy", "symbol": "NIFTY25NOV24000CE", "exchange": "NFO", "quantity": 75,
        "price_paise": 12350, "paper": False, "account": "main"}


def test_rupees_use_indian_grouping_and_signs() -> None:
    assert rupees(Decimal("12345678.5")) == "₹1,23,45,678.50"
    assert rupees(999) == "₹999.00"
    assert rupees(Decimal("-1500.75"), signed=True) == "-₹1,500.75"
    assert rupees(0, signed=True) == "₹0.00"
    assert rupees("100000", signed=True) == "+₹1,00,000.00"


def test_order_filled_has_side_contract_quantity_price_and_mode() -> None:
    title, body = format_message(Event.ORDER_FILLED, FILL)
    assert title == "[LIVE] BUY 75 NFO:NIFTY25NOV24000CE filled @ ₹123.50"
    for line in ("Side: BUY", "Contract: NFO:NIFTY25NOV24000CE", "Quantity: 75",
                 "Price: ₹123.50", "Mode: live", "Account: main"):
        assert line in body.splitlines()
    paper_title, paper_body = format_message("order_filled", {**FILL, "paper": True})
    assert paper_title.startswith("[PAPER] ") and "Mode: paper" in paper_body


def test_order_rejected_keeps_the_brokers_reason_verbatim() -> None:
    reason = "AB4036 : Insufficient funds. Required margin is 1,23,456.00 (RMS:Margin Exceeds)"
    title, body = format_message(Event.ORDER_REJECTED, {**FILL, "reason": reason})
    assert "rejected" in title and f"Reason: {reason}" in body.splitlines()


@pytest.mark.parametrize(
    ("raw", "shown"),
    [("stop_loss", "stop-loss"), ("target", "target"), ("trailing_stop", "trailing stop"),
     ("signal", "signal"), ("manual", "manual"), ("square_off", "square-off")],
)
def test_position_closed_names_the_reason_and_pnl(raw: str, shown: str) -> None:
    title, body = format_message(
        Event.POSITION_CLOSED,
        {"symbol": "BANKNIFTY25NOV52000PE", "quantity": 30, "reason": raw, "paper": True,
         "entry_price_paise": 20000, "exit_price": "150.5", "pnl_paise": -148500},
    )
    assert f"({shown})" in title and "P&L -₹1,485.00" in title
    assert f"Exit reason: {shown}" in body and "Entry: ₹200.00" in body and "Exit: ₹150.50" in body


def test_daily_summary_nets_charges() -> None:
    title, body = format_message(
        Event.DAILY_SUMMARY,
        {"date": "2026-11-25", "trades": 6, "realized_pnl_paise": 1234500, "charges_paise": 45025,
         "failures": 2},
    )
    assert title == "Day summary 2026-11-25: net +₹11,894.75"
    assert "Trades: 6" in body and "Charges: ₹450.25" in body and "Failures: 2" in body


def test_every_event_formats_with_no_data_and_unknown_is_refused() -> None:
    for event in Event:
        title, body = format_message(event, {})
        assert title and isinstance(body, str)
    with pytest.raises(ValueError, match="unknown notification event"):
        format_message("order_exploded", {})
    with pytest.raises(ValueError, match="not a number"):
        format_message(Event.ORDER_FILLED, {"price": "12,3"})
