"""Broker accounts: add, edit, delete, test connection; secrets are write-only."""

import reflex as rx

from ats_app.components.confirm import confirm_dialog
from ats_app.components.layout import app_page, form_error, form_message, submit_button
from ats_app.components.table import data_table
from ats_app.state.accounts import AccountsState

COLUMNS = [
    ("Label", "label"),
    ("Client ID", "client_id"),
    ("Server", "server"),
    ("Egress", "egress"),
    ("Egress IP", "egress_ip"),
    ("Secrets", "secrets"),
    ("Own limits", "limits"),
    ("Session", "session"),
]


def _actions(row: rx.Var) -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.button(
                "Test connection",
                size="1",
                on_click=AccountsState.test_connection(row["id"]),
                id="test-" + row["id"],
            ),
            rx.button(
                "Edit", size="1", variant="soft", on_click=AccountsState.start_edit(row["id"])
            ),
            rx.button(
                "Delete",
                size="1",
                variant="soft",
                color_scheme="red",
                on_click=AccountsState.ask_delete(row["id"]),
            ),
        ),
        rx.text(
            AccountsState.test_results.get(row["id"], ""), size="1", id="test-result-" + row["id"]
        ),
        spacing="1",
    )


def _input(name: str, placeholder: str, kind: str = "text") -> rx.Component:
    return rx.input(
        name=name,
        id=f"acc-{name}",
        placeholder=placeholder,
        type=kind,
        width="100%",
        auto_complete="off",
        # Editing shows the current non-secret values; secrets always start empty.
        default_value=AccountsState.edit_values.get(name, ""),
        key=AccountsState.editing_id.to_string() + name,
    )


def _form() -> rx.Component:
    return rx.card(
        rx.form(
            rx.vstack(
                rx.heading(
                    rx.cond(
                        AccountsState.editing_id > 0,
                        "Edit " + AccountsState.edit_label,
                        "Add an Angel One account",
                    ),
                    size="4",
                ),
                rx.text(
                    "Secrets are stored encrypted and never shown again. When editing, "
                    "leave a secret empty to keep the stored one.",
                    size="2",
                    color="var(--gray-11)",
                ),
                rx.grid(
                    _input("label", "Label (e.g. Main account)"),
                    rx.cond(
                        AccountsState.editing_id > 0,
                        rx.fragment(),
                        _input("client_id", "Client ID"),
                    ),
                    _input("api_key", "SmartAPI API key", "password"),
                    _input("pin", "PIN", "password"),
                    _input("totp_secret", "TOTP secret (base32)", "password"),
                    _input("base_url", "SmartAPI server (empty = Angel One)"),
                    _input("egress_proxy", "Egress proxy URL (optional)"),
                    _input("egress_ip", "Registered static IP (optional)"),
                    _input("egress_source_ip", "Local source address (static IP on this server)"),
                    _input("max_open_positions", "Max open positions on this account"),
                    _input("max_lots_per_order", "Max lots per order on this account"),
                    columns=rx.breakpoints(initial="1", sm="2"),
                    spacing="3",
                    width="100%",
                ),
                rx.text(
                    "This account's own limits apply beside yours (Profile): an alert trades "
                    "here only within both. Empty: only your limits apply. An alert an account's "
                    "limit holds back says why on the Alerts page.",
                    size="1",
                    color="var(--gray-11)",
                ),
                rx.text(
                    "Angel One accepts orders only from the static IP registered for the "
                    "account. Fill in at most one of: an egress proxy URL that leaves from that "
                    "IP, or a local source address — an IP of this server that maps to it "
                    "(on EC2, the secondary private IP whose Elastic IP you registered). "
                    "Both empty: orders leave from the server's default address.",
                    size="1",
                    color="var(--gray-11)",
                ),
                form_error(AccountsState.error),
                form_message(AccountsState.message),
                rx.hstack(
                    submit_button("Save account", "acc-save"),
                    rx.cond(
                        AccountsState.editing_id > 0,
                        rx.button(
                            "Cancel",
                            variant="soft",
                            type="button",
                            on_click=AccountsState.cancel_edit,
                        ),
                    ),
                    rx.spacer(),
                    rx.button(
                        "Add simulated Angel One account",
                        type="button",
                        variant="outline",
                        on_click=AccountsState.add_simulated,
                        id="add-simulated",
                    ),
                    width="100%",
                    wrap="wrap",
                ),
                spacing="3",
                width="100%",
            ),
            on_submit=AccountsState.save,
            reset_on_submit=False,
            id="account-form",
            width="100%",
        ),
        width="100%",
    )


def accounts_page() -> rx.Component:
    return app_page(
        rx.vstack(
            rx.heading("Broker accounts", size="6"),
            data_table(
                AccountsState.rows,
                COLUMNS,
                _actions,
                table_id="accounts",
                empty="No broker account yet. Add one below, or a simulated one to "
                "try the system offline.",
                stack_on_phone=True,
            ),
            _form(),
            confirm_dialog(
                AccountsState.confirm_delete > 0,
                "Delete this account?",
                "Links that trade on it will stop using it. This cannot be undone.",
                AccountsState.delete,
                AccountsState.cancel_delete,
                "Delete",
                "delete-account",
            ),
            spacing="4",
            width="100%",
        )
    )
