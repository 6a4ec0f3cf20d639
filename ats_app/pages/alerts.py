"""Alerts: what each TradingView alert did, and on every account of its link."""

import reflex as rx

from ats_app.components.layout import app_page
from ats_app.components.status import badge, stamp
from ats_app.components.table import data_table
from ats_app.state.alerts import AlertsState

ALERT_COLUMNS = [
    ("Received", "received_ist"),
    ("Link", "link"),
    ("Signal", "signal"),
    ("Status", "status"),
    ("Accounts", "accounts"),
    ("Why not traded", "reason"),
]
ACCOUNT_COLUMNS = [
    ("Account", "account"),
    ("Outcome", "outcome"),
    ("Order tag", "ordertag"),
    ("Order status", "order_status"),
    ("Filled", "filled"),
    ("Fill price ₹", "fill_price"),
    ("Order after", "created_after"),
    ("Update after", "updated_after"),
    ("Why not traded", "reason"),
]
def _details_button(row: rx.Var) -> rx.Component:
    return rx.button("Details", size="1", variant="soft", id="details-" + row["id"],
                     on_click=AlertsState.show(row["id"]))


def _detail_dialog() -> rx.Component:
    d = AlertsState.detail
    return rx.dialog.root(
        rx.dialog.content(
            rx.hstack(
                rx.dialog.title("Alert #" + d["id"], margin="0"),
                badge(d["status"]),
                rx.spacer(),
                rx.dialog.close(rx.button("Close", variant="soft", size="1", id="detail-close")),
                align="center",
                width="100%",
            ),
            rx.text(d["received_ist"] + " · " + d["link"] + " · " + d["signal"],
                    size="2", color="var(--gray-11)", id="detail-summary"),
            rx.cond(d["reason"] != "",
                    rx.text("Why not traded: " + d["reason"], size="2", id="detail-reason")),
            rx.text("Order after / Update after: from the alert's arrival to the account's "
                    "order being written, and to its last change (the fill).",
                    size="1", color="var(--gray-10)"),
            rx.box(
                data_table(
                    AlertsState.detail_rows,
                    ACCOUNT_COLUMNS,
                    table_id="alert-accounts",
                    empty="No account was reached: the alert was ignored, queued or is "
                          "not processed yet.",
                    render={"outcome": lambda r: badge(r["outcome"]),
                            "order_status": lambda r: badge(r["order_status"])},
                    stack_on_phone=True,
                ),
                margin_top="12px",
            ),
            max_width="min(1100px, 96vw)",
            padding="16px",
            id="alert-detail",
        ),
        open=AlertsState.detail_open,
        on_open_change=AlertsState.set_detail_open,
    )


def alerts_page() -> rx.Component:
    return app_page(
        rx.vstack(
            rx.hstack(
                rx.heading("Alerts", size="6"),
                rx.spacer(),
                rx.button("Refresh", variant="soft", on_click=AlertsState.load,
                          id="alerts-refresh"),
                width="100%",
            ),
            rx.text("Times in IST. Details: each account's order, fill and latency, or why "
                    "it did not trade.", size="2", color="var(--gray-11)"),
            data_table(
                AlertsState.rows,
                ALERT_COLUMNS,
                _details_button,
                table_id="alerts",
                empty="No alerts yet.",
                render={"status": lambda r: badge(r["status"]),
                        "received_ist": lambda r: stamp(r["received_ist"])},
                stack_on_phone=True,
            ),
            _detail_dialog(),
            spacing="3",
            width="100%",
        )
    )
