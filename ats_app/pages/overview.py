"""Overview: bot state, trading mode, service health."""

import reflex as rx

from ats_app.components.layout import app_page
from ats_app.state.overview import OverviewState


def _service_badge(item: rx.Var) -> rx.Component:
    return rx.badge(
        item[0], ": ", item[1],
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
                        rx.button("Stop bot", color_scheme="red", id="bot-stop",
                                  on_click=OverviewState.set_bot(False)),
                        rx.button("Start bot", color_scheme="green", id="bot-start",
                                  on_click=OverviewState.set_bot(True)),
                    ),
                    rx.spacer(),
                    rx.text("Mode: ", rx.code(OverviewState.trading_mode.upper())),
                    rx.text("Market hours: ", rx.code(OverviewState.market_hours)),
                    align="center",
                    spacing="4",
                    width="100%",
                ),
                width="100%",
            ),
            rx.card(
                rx.vstack(
                    rx.text("Services", weight="bold"),
                    rx.hstack(rx.foreach(OverviewState.services, _service_badge), wrap="wrap"),
                ),
                width="100%",
            ),
            spacing="4",
            width="100%",
        )
    )
