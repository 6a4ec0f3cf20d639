"""Strategies: the Pine Script strategies webhook links are grouped by."""

import reflex as rx

from ats_app.components.confirm import confirm_dialog
from ats_app.components.layout import app_page, form_error, form_message, submit_button
from ats_app.components.table import data_table
from ats_app.state.strategies import StrategiesState


def _actions(row: rx.Var) -> rx.Component:
    return rx.hstack(
        rx.button("Edit", size="1", variant="soft", on_click=StrategiesState.start_edit(row["id"])),
        rx.button(
            "Delete",
            size="1",
            variant="soft",
            color_scheme="red",
            on_click=StrategiesState.ask_delete(row["id"]),
        ),
    )


def strategies_page() -> rx.Component:
    return app_page(
        rx.vstack(
            rx.heading("Strategies", size="6"),
            data_table(
                StrategiesState.rows,
                [("Name", "name"), ("Description", "description")],
                _actions,
                table_id="strategies",
                empty="No strategy yet.",
            ),
            rx.card(
                rx.form(
                    rx.vstack(
                        rx.heading(
                            rx.cond(
                                StrategiesState.editing_id > 0, "Edit strategy", "New strategy"
                            ),
                            size="4",
                        ),
                        rx.input(
                            name="name",
                            id="strategy-name",
                            placeholder="Name",
                            default_value=StrategiesState.edit_name,
                            width="100%",
                            key=StrategiesState.editing_id.to_string() + "n",
                        ),
                        rx.text_area(
                            name="description",
                            id="strategy-description",
                            placeholder="What the Pine Script does (optional)",
                            default_value=StrategiesState.edit_description,
                            width="100%",
                            key=StrategiesState.editing_id.to_string() + "d",
                        ),
                        form_error(StrategiesState.error),
                        form_message(StrategiesState.message),
                        rx.hstack(
                            submit_button("Save strategy", "strategy-save"),
                            rx.cond(
                                StrategiesState.editing_id > 0,
                                rx.button(
                                    "Cancel",
                                    type="button",
                                    variant="soft",
                                    on_click=StrategiesState.cancel_edit,
                                ),
                            ),
                        ),
                        spacing="3",
                        width="100%",
                    ),
                    on_submit=StrategiesState.save,
                    reset_on_submit=False,
                    id="strategy-form",
                    width="100%",
                ),
                width="100%",
                max_width="640px",
            ),
            confirm_dialog(
                StrategiesState.confirm_delete > 0,
                "Delete this strategy?",
                "Webhook links keep working without a strategy.",
                StrategiesState.delete,
                StrategiesState.cancel_delete,
                "Delete",
                "delete-strategy",
            ),
            spacing="4",
            width="100%",
        )
    )
