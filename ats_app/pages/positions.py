"""Positions: open and closed, with a manual exit."""

import reflex as rx

from ats_app.components.confirm import confirm_dialog
from ats_app.components.layout import app_page
from ats_app.components.status import badge, stamp
from ats_app.components.table import data_table
from ats_app.state.positions import PositionsState

# What a trader acts on comes first: on a screen too narrow for every column (the table then
# scrolls in its box) symbol, status and P&L stay in view.
COLUMNS = [
    ("Symbol", "tradingsymbol"),
    ("Status", "status"),
    ("P&L ₹", "pnl"),
    ("Qty", "quantity"),
    ("Entry", "entry_price"),
    ("LTP", "ltp"),
    ("Stop", "stop_price"),
    ("Target", "target_price"),
    ("Peak", "peak_price"),
    ("Exit", "exit_price"),
    ("Reason", "exit_reason"),
    ("Link", "link"),
    ("Mode", "mode"),
    ("Opened", "opened_ist"),
    ("Closed", "closed_ist"),
]
# A phone's card starts with which position, its P&L and status, then Exit now.
PHONE_FIRST = ("tradingsymbol", "pnl", "status")


def pnl(value: rx.Var) -> rx.Component:
    """Rupees in red below zero, green above (blank: no price yet)."""
    return rx.text(value, as_="span", weight="medium", color=rx.cond(
        value.startswith("-"), "var(--red-11)",  # type: ignore[attr-defined]
        rx.cond((value != "") & (value != "0.00"), "var(--green-11)", "inherit")))


def stop_where(row: rx.Var) -> rx.Component:
    """The stop, and where it lives: our monitor's alone ("ours"), or also an order resting at
    the broker: what the broker has of it, its trigger and order id. A warning (red, with an
    icon) when the broker should hold it and does not: only our monitor protects it then.
    In the Stop column, not one of its own: a table of open positions a laptop shows whole."""
    return rx.vstack(
        rx.text(row["stop_price"], as_="span"),
        rx.cond(
            row["stop_where"] == "at broker",
            _at_broker(row),
            rx.cond(row["stop_price"] != "",
                    rx.text("ours", as_="span", size="1", color="var(--gray-11)")),
        ),
        spacing="0",
        id="stop-lives-" + row["id"],
    )


def _at_broker(row: rx.Var) -> rx.Component:
    warn = row["stop_warning"] == "1"
    # No nowrap: on a narrow laptop "order" goes above its number, not the table sideways.
    small = {"as_": "span", "size": "1", "color": "var(--gray-11)"}
    return rx.vstack(
        rx.hstack(
            rx.cond(warn, rx.icon("triangle-alert", size=14, color="var(--red-11)")),
            rx.badge("at broker", color_scheme=rx.cond(warn, "red", "blue"), variant="soft"),
            spacing="1",
            align="center",
        ),
        rx.text(row["stop_state"], as_="span", size="1",
                weight=rx.cond(warn, "bold", "regular"),
                color=rx.cond(warn, "var(--red-11)", "inherit")),
        rx.cond(
            row["stop_reason"] != "",
            # Angel's texts run long: two lines in a laptop's table, the whole of it on hover;
            # a phone's card (no hover) shows it all.
            rx.text(row["stop_reason"], as_="span", size="1", color="var(--red-11)",
                    title=row["stop_reason"],
                    style={"@media (min-width: 641px)": {
                        "maxWidth": "11em", "display": "-webkit-box", "WebkitLineClamp": "2",
                        "WebkitBoxOrient": "vertical", "overflow": "hidden"}}),
        ),
        rx.cond(row["broker_trigger"] != "", rx.text("trigger ", row["broker_trigger"], **small)),
        rx.cond(row["broker_order_id"] != "",
                rx.text("order ", row["broker_order_id"], **small)),
        spacing="0",
    )


RENDER = {
    "status": lambda r: badge(r["status"]),
    "stop_price": stop_where,
    "pnl": lambda r: pnl(r["pnl"]),
    "opened_ist": lambda r: stamp(r["opened_ist"]),
    "closed_ist": lambda r: stamp(r["closed_ist"]),
}


def _actions(row: rx.Var) -> rx.Component:
    return rx.cond(
        row["status"] == "OPEN",
        rx.button(
            "Exit now",
            size="1",
            color_scheme="red",
            on_click=PositionsState.ask_exit(row["id"]),
            id="exit-" + row["id"],
            white_space="nowrap",
        ),
    )


def positions_page() -> rx.Component:
    return app_page(
        rx.vstack(
            rx.hstack(
                rx.heading("Positions", size="6"),
                rx.spacer(),
                rx.button("Refresh", variant="soft", on_click=PositionsState.load),
                width="100%",
            ),
            data_table(
                PositionsState.rows,
                COLUMNS,
                _actions,
                table_id="positions",
                empty="No positions yet.",
                render=RENDER,
                stack_on_phone=True,
                phone_first=PHONE_FIRST,
            ),
            confirm_dialog(
                PositionsState.confirm_exit > 0,
                "Exit this position now?",
                "A market sell order is placed for the whole quantity.",
                PositionsState.exit_now,
                PositionsState.cancel_exit,
                "Exit now",
                "exit-position",
            ),
            spacing="3",
            width="100%",
        )
    )
