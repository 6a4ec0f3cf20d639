"""Positions: open and closed, with a manual exit."""

import reflex as rx

from ats_app.components.confirm import confirm_dialog
from ats_app.components.layout import app_page
from ats_app.components.table import data_table
from ats_app.state.positions import PositionsState

COLUMNS = [
    ("Symbol", "tradingsymbol"),
    ("Link", "link"),
    ("Qty", "quantity"),
    ("Entry", "entry_price"),
    ("LTP", "ltp"),
    ("Peak", "peak_price"),
    ("Stop", "stop_price"),
    ("Target", "target_price"),
    ("Status", "status"),
    ("Exit", "exit_price"),
    ("Reason", "exit_reason"),
    ("P&L ₹", "pnl"),
    ("Mode", "mode"),
]


def _actions(row: rx.Var) -> rx.Component:
    return rx.cond(
        row["status"] == "OPEN",
        rx.button(
            "Exit now",
            size="1",
            color_scheme="red",
            on_click=PositionsState.ask_exit(row["id"]),
            id="exit-" + row["id"],
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
