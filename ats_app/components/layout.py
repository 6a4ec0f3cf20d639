"""Shared page chrome: the mode banner, the navigation bar and the auth card."""

from __future__ import annotations

import reflex as rx

from ats_app import routes
from ats_app.engine.core.config import settings
from ats_app.state.auth import AuthState


def mode_banner() -> rx.Component:
    """PAPER vs LIVE, impossible to miss. Read at page build time from TRADING_MODE."""
    live = settings().trading_mode == "live"
    text = (
        "LIVE TRADING — real orders, real money"
        if live
        else "PAPER TRADING — simulated orders, no real money"
    )
    if settings().market_hours == "always":
        text += " · market hours OFF (demo: trades at any hour, no square-off)"
    return rx.box(
        rx.text(text, weight="bold", size="2", id="mode-banner"),
        background_color="var(--red-9)" if live else "var(--amber-9)",
        color="white" if live else "black",
        padding="6px 16px",
        width="100%",
        text_align="center",
    )


def navbar() -> rx.Component:
    return rx.hstack(
        rx.heading("ATS", size="5"),
        *[rx.link(label, href=href, id=f"nav-{label.lower()}") for label, href in routes.NAV],
        rx.spacer(),
        rx.text(AuthState.display_name, id="user-name", size="2"),
        rx.button("Log out", on_click=AuthState.logout, variant="soft", size="2", id="logout"),
        padding="12px 16px",
        border_bottom="1px solid var(--gray-5)",
        align="center",
        width="100%",
        spacing="4",
        wrap="wrap",
    )


def app_page(*children: rx.Component) -> rx.Component:
    return rx.vstack(
        mode_banner(),
        navbar(),
        # 1440: the positions table (15 columns and Exit now) fits a 1280 px screen whole.
        rx.box(*children, padding="16px", width="100%", max_width="1440px"),
        spacing="0",
        width="100%",
        align="center",
    )


def submit_button(label: str, button_id: str, **props: object) -> rx.Component:
    """A submit button that stays disabled until the page is connected to the backend, so an
    early click cannot fall through to a plain browser form submission and be lost."""
    return rx.button(label, type="submit", id=button_id, disabled=~rx.State.is_hydrated, **props)


def form_error(message: rx.Var) -> rx.Component:
    return rx.cond(
        message != "",
        rx.callout(
            message, icon="triangle_alert", color_scheme="red", role="alert", id="form-error"
        ),
    )


def form_message(message: rx.Var) -> rx.Component:
    return rx.cond(
        message != "",
        rx.callout(message, icon="check", color_scheme="green", id="form-message"),
    )


def auth_card(title: str, *children: rx.Component) -> rx.Component:
    return rx.vstack(
        mode_banner(),
        rx.center(
            rx.card(
                rx.vstack(
                    rx.heading("Automated Trading System", size="4"),
                    rx.text(title, size="3", color="var(--gray-11)"),
                    *children,
                    spacing="3",
                    width="100%",
                ),
                width="380px",
            ),
            padding_top="10vh",
            width="100%",
        ),
        spacing="0",
        width="100%",
    )
