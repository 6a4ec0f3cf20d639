"""Registration page (can be closed with ALLOW_REGISTRATION=false)."""

import reflex as rx

from ats_app import routes
from ats_app.components.layout import auth_card, form_error, submit_button
from ats_app.state.auth import AuthState


def _field(name: str, placeholder: str, kind: str = "text", auto: str = "off") -> rx.Component:
    return rx.input(
        name=name, placeholder=placeholder, type=kind, id=name, width="100%", auto_complete=auto
    )


def register_page() -> rx.Component:
    return auth_card(
        "Create an account",
        rx.cond(
            AuthState.registration_open,
            rx.form(
                rx.vstack(
                    rx.hstack(
                        _field("first_name", "First name", auto="given-name"),
                        _field("last_name", "Last name", auto="family-name"),
                        width="100%",
                    ),
                    _field("username", "Username", auto="username"),
                    _field(
                        "password", "Password (at least 8 characters)", "password", "new-password"
                    ),
                    _field("confirm", "Repeat password", "password", "new-password"),
                    form_error(AuthState.error),
                    submit_button("Register", "register-submit", width="100%"),
                    spacing="3",
                    width="100%",
                ),
                on_submit=AuthState.register,
                reset_on_submit=False,
                width="100%",
            ),
            rx.callout(
                "Registration is closed on this server. Ask the administrator for an account.",
                icon="info",
            ),
        ),
        rx.text(
            "Already registered? ", rx.link("Log in", href=routes.LOGIN, id="to-login"), size="2"
        ),
    )
