"""A confirmation dialog for actions that spend money or delete data."""

from __future__ import annotations

import reflex as rx


def confirm_dialog(
    is_open: rx.Var,
    title: str,
    message: rx.Var | str,
    on_confirm: rx.EventHandler,
    on_cancel: rx.EventHandler,
    confirm_label: str = "Confirm",
    dialog_id: str = "confirm",
) -> rx.Component:
    return rx.alert_dialog.root(
        rx.alert_dialog.content(
            rx.alert_dialog.title(title),
            rx.alert_dialog.description(message),
            rx.hstack(
                rx.button(
                    "Cancel",
                    variant="soft",
                    color_scheme="gray",
                    on_click=on_cancel,
                    id=f"{dialog_id}-cancel",
                ),
                rx.button(
                    confirm_label, color_scheme="red", on_click=on_confirm, id=f"{dialog_id}-ok"
                ),
                justify="end",
                spacing="3",
                margin_top="16px",
            ),
        ),
        open=is_open,
    )
