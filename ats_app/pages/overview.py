"""Overview: bot state, trading mode, service health."""

import reflex as rx

from ats_app.components.confirm import confirm_dialog
from ats_app.components.layout import app_page
from ats_app.components.table import data_table
from ats_app.pages.positions import PHONE_FIRST, RENDER
from ats_app.state.overview import OverviewState

OPEN_COLUMNS = [
    ("Symbol", "tradingsymbol"),
    ("Link", "link"),
    ("Qty", "quantity"),
    ("Entry", "entry_price"),
    ("LTP", "ltp"),
    ("Stop", "stop_price"),
    ("Target", "target_price"),
    ("Peak", "peak_price"),
    ("P&L ₹", "pnl"),
    ("Status", "status"),
    ("Mode", "mode"),
]


def _money_card(label: str, value: rx.Var, card_id: str) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.text(label, size="2", color="var(--gray-11)"),
            rx.heading(
                "₹ ",
                value,
                size="6",
                id=card_id,
                color=rx.cond(value.startswith("-"), "var(--red-11)", "var(--green-11)"),
            ),
            spacing="1",
        ),
        min_width="200px",
    )


def _service_badge(item: rx.Var) -> rx.Component:
    return rx.badge(
        item[0],
        ": ",
        item[1],
        color_scheme=rx.cond(item[1] == "up", "green", "red"),
        size="2",
    )


def overview_page() -> rx.Component:
    return app_page(
        rx.vstack(
            rx.heading("Welcome, ", OverviewState.display_name, size="6", id="welcome"),
            rx.card(
                rx.hstack(
                    rx.text("Bot", weight="bold"),
                    rx.cond(
                        OverviewState.bot_running,
                        rx.badge("RUNNING", color_scheme="green", size="3", id="bot-state"),
                        rx.badge("STOPPED", color_scheme="gray", size="3", id="bot-state"),
                    ),
                    rx.cond(
                        OverviewState.bot_running,
                        rx.button(
                            "Stop bot",
                            color_scheme="red",
                            id="bot-stop",
                            on_click=OverviewState.set_bot(False),
                        ),
                        rx.button(
                            "Start bot",
                            color_scheme="green",
                            id="bot-start",
                            on_click=OverviewState.set_bot(True),
                        ),
                    ),
                    rx.cond(
                        OverviewState.halted,
                        rx.badge("KILL SWITCH ENGAGED", color_scheme="red", size="3", id="halted"),
                    ),
                    rx.button(
                        "Kill switch",
                        color_scheme="red",
                        variant="outline",
                        on_click=OverviewState.ask_kill,
                        id="kill-switch",
                    ),
                    rx.spacer(),
                    rx.text("Mode: ", rx.code(OverviewState.trading_mode.upper())),
                    rx.text("Market hours: ", rx.code(OverviewState.market_hours)),
                    align="center",
                    spacing="4",
                    width="100%",
                    wrap="wrap",  # a phone shows the mode on a line of its own, not clipped
                ),
                width="100%",
            ),
            rx.cond(
                OverviewState.kill_result != "",
                rx.callout(OverviewState.kill_result, color_scheme="red", id="kill-result"),
            ),
            confirm_dialog(
                OverviewState.confirm_kill,
                "Engage the kill switch?",
                "Stops the bot, cancels every open entry order and exits every open "
                "position at market now. Start the bot again to resume.",
                OverviewState.kill,
                OverviewState.cancel_kill,
                "Kill everything",
                "kill",
            ),
            rx.hstack(
                _money_card("Realized today", OverviewState.realized_today, "pnl-realized"),
                _money_card("Unrealized (open)", OverviewState.unrealized, "pnl-unrealized"),
                wrap="wrap",
                spacing="3",
            ),
            rx.cond(
                OverviewState.pnl_points.length() > 0,
                rx.card(
                    rx.text("Realized P&L today (₹, running total; times IST)", size="2"),
                    rx.recharts.line_chart(
                        rx.recharts.line(data_key="pnl", stroke="var(--indigo-9)", dot=True),
                        rx.recharts.x_axis(data_key="time"),
                        rx.recharts.y_axis(),
                        rx.recharts.graphing_tooltip(),
                        data=OverviewState.pnl_points,
                        height=220,
                        width="100%",
                    ),
                    width="100%",
                    id="pnl-chart",
                ),
            ),
            rx.heading("Open positions", size="4"),
            data_table(
                OverviewState.open_rows,
                OPEN_COLUMNS,
                table_id="open-positions",
                empty="No open position.",
                render=RENDER,
                stack_on_phone=True,
                phone_first=PHONE_FIRST,
            ),
            rx.card(
                rx.vstack(
                    rx.text("Services", weight="bold"),
                    rx.text(
                        "Price feed: ",
                        rx.code(OverviewState.feed, id="feed-state"),
                        " (live: streaming · idle: nothing to watch · off: no feed process)",
                        size="2",
                    ),
                    rx.cond(
                        OverviewState.stale.length() > 0,
                        rx.callout(
                            "Stale prices (no tick lately; exits use REST prices): "
                            + OverviewState.stale.join(", "),
                            color_scheme="orange",
                            id="stale-feed",
                        ),
                    ),
                    rx.hstack(rx.foreach(OverviewState.services, _service_badge), wrap="wrap"),
                ),
                width="100%",
            ),
            spacing="4",
            width="100%",
        )
    )
