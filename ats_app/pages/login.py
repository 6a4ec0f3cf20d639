"""Login page."""

import reflex as rx

from ats_app import routes
from ats_app.components.layout import auth_card, form_error, submit_button
from ats_app.state.auth import AuthState


def login_page() -> rx.Component:
    return auth_card(
        "Log in",
        rx.form(
            rx.vstack(
                rx.input(
                    name="username",
                    placeholder="Username",
                    id="username",
                    width="100%",
                    auto_complete="username",
                ),
                rx.input(
                    name="password",
                    placeholder="Password",
                    type="password",
                    id="password",
                    width="100%",
                    auto_complete="current-password",
                ),
                form_error(AuthState.error),
                submit_button("Log in", "login-submit", width="100%"),
                spacing="3",
                width="100%",
            ),
            on_submit=AuthState.login,
            reset_on_submit=False,
            width="100%",
        ),
        rx.cond(
            AuthState.registration_open,
            rx.text(
                "No account? ",
                rx.link("Register", href=routes.REGISTER, id="to-register"),
                size="2",
            ),
        ),
    )
