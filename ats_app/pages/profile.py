"""Profile: who you are, change password, log out."""

import reflex as rx

from ats_app.components.layout import app_page, form_error, form_message, submit_button
from ats_app.state.auth import AuthState


def profile_page() -> rx.Component:
    return app_page(
        rx.heading("Profile", size="6"),
        rx.card(
            rx.vstack(
                rx.text("Name: ", rx.text.strong(AuthState.display_name), id="profile-name"),
                rx.text("Username: ", rx.code(AuthState.username)),
                rx.cond(AuthState.is_admin, rx.badge("administrator", color_scheme="indigo")),
                rx.button("Log out", on_click=AuthState.logout, variant="soft"),
            ),
            max_width="420px",
            margin_y="12px",
        ),
        rx.card(
            rx.form(
                rx.vstack(
                    rx.heading("Change password", size="4"),
                    rx.input(
                        name="current_password",
                        type="password",
                        id="current_password",
                        placeholder="Current password",
                        width="100%",
                    ),
                    rx.input(
                        name="new_password",
                        type="password",
                        id="new_password",
                        placeholder="New password (at least 8 characters)",
                        width="100%",
                    ),
                    rx.input(
                        name="confirm",
                        type="password",
                        id="confirm",
                        placeholder="Repeat new password",
                        width="100%",
                    ),
                    form_error(AuthState.error),
                    form_message(AuthState.message),
                    submit_button("Change password", "change-password"),
                    spacing="3",
                    width="100%",
                ),
                on_submit=AuthState.change_password,
                reset_on_submit=True,
            ),
            max_width="420px",
        ),
    )
