"""Settings: change password."""

import reflex as rx

from ats_app.components.layout import app_page, form_error, submit_button
from ats_app.state.auth import AuthState


def settings_page() -> rx.Component:
    return app_page(
        rx.card(
            rx.form(
                rx.vstack(
                    rx.heading("Change password", size="4"),
                    rx.input(name="current_password", type="password", id="current_password",
                             placeholder="Current password", width="100%"),
                    rx.input(name="new_password", type="password", id="new_password",
                             placeholder="New password (at least 8 characters)", width="100%"),
                    rx.input(name="confirm", type="password", id="confirm",
                             placeholder="Repeat new password", width="100%"),
                    form_error(AuthState.error),
                    rx.cond(AuthState.message != "",
                            rx.callout(AuthState.message, icon="check", color_scheme="green",
                                       id="form-message")),
                    submit_button("Change password", "change-password"),
                    spacing="3",
                    width="100%",
                ),
                on_submit=AuthState.change_password,
                reset_on_submit=True,
            ),
            max_width="420px",
        )
    )
