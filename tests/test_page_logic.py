"""Page state logic, without a browser."""

from __future__ import annotations

from datetime import date

import pytest

from ats_app.engine.core.errors import ValidationError
from ats_app.engine.tenants.webhooks import LinkAccount
from ats_app.state.orders import clamp_page, delete_label, order_filter, page_label
from ats_app.state.webhooks import link_accounts_from_form


def test_order_filter_parses_the_form_and_ignores_junk() -> None:
    f = order_filter(
        {
            "date_from": "01-11-2026",  # day first, as the page asks
            "date_to": "bad",
            "strategy_id": "7",
            "account_id": "",
            "status": "FILLED",
            "symbol": "nifty",
        }
    )
    assert f.date_from == date(2026, 11, 1) and f.date_to is None
    assert f.strategy_id == 7 and f.account_id is None
    assert (f.status, f.symbol) == ("FILLED", "nifty")


@pytest.mark.parametrize(
    "page,total,label",
    [
        (0, 0, "No orders"),
        (0, 1, "1–1 of 1"),
        (0, 120, "1–50 of 120"),
        (2, 120, "101–120 of 120"),
    ],
)
def test_page_label(page: int, total: int, label: str) -> None:
    assert page_label(page, total) == label


@pytest.mark.parametrize("page,total,expected", [(-1, 120, 0), (5, 120, 2), (1, 0, 0), (1, 51, 1)])
def test_clamp_page_stays_in_range(page: int, total: int, expected: int) -> None:
    assert clamp_page(page, total) == expected


def test_delete_label_names_how_many_and_which() -> None:
    assert delete_label(0, 37) == "Delete 37 orders matching the filters? This cannot be undone."
    assert delete_label(1, 37) == "Delete 1 order selected? This cannot be undone."


def test_link_accounts_from_form() -> None:
    form = {"name": "x", "mult_3": "2", "mult_4": "0", "mult_5": "", "mult_9": "1"}
    assert link_accounts_from_form(form) == [LinkAccount(3, 2), LinkAccount(9, 1)]
    with pytest.raises(ValidationError) as err:
        link_accounts_from_form({"mult_3": "two"})
    assert err.value.field == "lot_multiplier"


def test_day_pnl_uses_ist_days_and_running_totals() -> None:
    from decimal import Decimal

    from ats_app.state.overview import day_pnl

    rows = [  # closed_at in UTC; the comments give IST
        {
            "status": "CLOSED",
            "closed_at": "2026-11-25T04:00:00+00:00",
            "pnl": "100.50",
        },  # 09:30
        {
            "status": "CLOSED",
            "closed_at": "2026-11-25T09:00:00+00:00",
            "pnl": "-40.00",
        },  # 14:30
        {
            "status": "CLOSED",
            "closed_at": "2026-11-24T19:00:00+00:00",
            "pnl": "7.00",
        },  # 00:30 25th
        {
            "status": "CLOSED",
            "closed_at": "2026-11-24T18:00:00+00:00",
            "pnl": "999",
        },  # 23:30 24th
        {"status": "OPEN", "closed_at": "", "pnl": "5"},
    ]
    total, points = day_pnl(rows, date(2026, 11, 25))
    assert total == Decimal("67.50")
    assert points == [
        {"time": "start", "pnl": "0.00"},
        {"time": "00:30:00", "pnl": "7.00"},
        {"time": "09:30:00", "pnl": "107.50"},
        {"time": "14:30:00", "pnl": "67.50"},
    ]


@pytest.mark.parametrize("text,day", [
    ("05-12-2026", date(2026, 12, 5)), ("5/12/2026", date(2026, 12, 5)),
    (" 05.12.2026 ", date(2026, 12, 5)), ("2026-12-05", date(2026, 12, 5)),
    ("", None), ("  ", None),
])
def test_date_filters_read_day_first(text: str, day: date | None) -> None:
    from ats_app.engine.core.clock import parse_day

    assert parse_day(text) == day


@pytest.mark.parametrize("text", ["12/31/2026", "31-02-2026", "05-12-26", "tomorrow", "2026-13-01"])
def test_a_bad_date_filter_is_named_not_ignored(text: str) -> None:
    from ats_app.state.dates import day_errors
    from ats_app.state.orders import DATE_FIELDS

    assert day_errors({"date_from": text}, DATE_FIELDS) == (
        f"From: {text!r} is not a date: use dd-mm-yyyy")
    assert day_errors({"date_from": "05-12-2026", "date_to": ""}, DATE_FIELDS) == ""


def test_phone_cards_put_what_a_trader_acts_on_first() -> None:
    from ats_app.components.table import ACTIONS, LEAD, card_order

    keys = ["tradingsymbol", "link", "qty", "pnl", "status", "mode"]
    order = card_order(keys, ("tradingsymbol", "pnl", "status"))
    assert sorted(order, key=order.__getitem__) == [
        LEAD, "tradingsymbol", "pnl", "status", ACTIONS, "link", "qty", "mode"]
    assert card_order(keys, ()) == {}  # no order given: the card keeps the table's
    with pytest.raises(ValueError, match="P&L"):
        card_order(keys, ("P&L",))
