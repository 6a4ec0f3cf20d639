"""Alerts: what each TradingView alert did, and on every account of its link."""

import reflex as rx

from ats_app.components.layout import app_page
from ats_app.components.status import badge, stamp
from ats_app.components.table import data_table
from ats_app.engine.core.clock import DAY_HINT
from ats_app.engine.execution.alert_detail import STATUSES
from ats_app.state.alerts import AlertsState

ALERT_COLUMNS = [
    ("Received", "received_ist"),
    ("Link", "link"),
    ("Signal", "signal"),
    ("Instrument", "instrument"),
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
    return rx.button("Details", size="1", variant="soft", id="details-" + row["key"],
                     on_click=AlertsState.show(row["key"]))


def _day_input(name: str, label: str) -> rx.Component:
    return rx.hstack(
        rx.text(label, size="2", color="var(--gray-11)"),
        # Shows the filter in force (after a reload too), not an empty box over a filtered list.
        rx.input(name=name, placeholder=DAY_HINT, id=f"filter-{name}", width="120px",
                 default_value=AlertsState.filters.get(name, ""),
                 key=name + AlertsState.filters.get(name, "")),
        align="center",
        spacing="1",
    )


def _filters() -> rx.Component:
    select_style = {"padding": "6px", "minWidth": "130px"}
    return rx.vstack(
        rx.form(
            rx.hstack(
                # Text, not type=date: the browser's date input follows its locale.
                _day_input("date_from", "From"),
                _day_input("date_to", "To"),
                rx.el.select(
                    rx.el.option("any link", value=""),
                    rx.foreach(AlertsState.link_options,
                               lambda o: rx.el.option(o[1], value=o[0])),
                    name="link_id", id="filter-link_id", style=select_style,
                    default_value=AlertsState.filters.get("link_id", ""),
                    key="link" + AlertsState.filters.get("link_id", "")
                    + AlertsState.link_options.length().to_string()),
                rx.el.select(
                    rx.el.option("any status", value=""),
                    *[rx.el.option(st, value=st) for st in STATUSES],
                    name="status", id="filter-status", style=select_style,
                    default_value=AlertsState.filters.get("status", ""),
                    key="status" + AlertsState.filters.get("status", "")),
                rx.button("Filter", type="submit", id="filter-apply"),
                wrap="wrap",
                spacing="2",
                align="center",
            ),
            on_submit=AlertsState.apply_filters,
            reset_on_submit=False,
        ),
        rx.cond(AlertsState.filter_error != "",
                rx.text(AlertsState.filter_error, color="var(--red-11)", size="2",
                        id="filter-error")),
        spacing="1",
        width="100%",
    )


def _refused_body() -> rx.Component:
    d = AlertsState.detail
    return rx.box(
        rx.text("The body as it arrived (the secret masked):", size="2", weight="medium"),
        rx.el.pre(
            rx.cond(d["body"] != "", d["body"], "(no body kept: it was too big or cut off)"),
            id="detail-body",
            style={"whiteSpace": "pre-wrap", "wordBreak": "break-all", "fontSize": "12px",
                   "background": "var(--gray-3)", "padding": "8px", "borderRadius": "6px",
                   "maxHeight": "40vh", "overflow": "auto", "margin": "4px 0 0 0"},
        ),
        margin_top="8px",
    )


def _detail_dialog() -> rx.Component:
    d = AlertsState.detail
    return rx.dialog.root(
        rx.dialog.content(
            rx.hstack(
                rx.dialog.title(
                    rx.cond(d["kind"] == "refused",
                            rx.cond(d["status"] == "DUPLICATE", "Repeated alert",
                                    "Refused alert"),
                            "Alert #" + d["id"]),
                    margin="0"),
                badge(d["status"]),
                rx.spacer(),
                rx.dialog.close(rx.button("Close", variant="soft", size="1", id="detail-close")),
                align="center",
                width="100%",
            ),
            rx.text(d["received_ist"] + " · " + d["link"] + " · " + d["signal"] + " "
                    + d["instrument"], size="2", color="var(--gray-11)", id="detail-summary"),
            rx.cond(d["reason"] != "",
                    rx.text("Why not traded: " + d["reason"], size="2", id="detail-reason")),
            rx.cond(d["kind"] == "refused", _refused_body(), _accounts_part()),
            max_width="min(1100px, 96vw)",
            padding="16px",
            id="alert-detail",
        ),
        open=AlertsState.detail_open,
        on_open_change=AlertsState.set_detail_open,
    )


def _accounts_part() -> rx.Component:
    return rx.fragment(
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
            rx.text("Every alert your links received, traded or refused. Times in IST. "
                    "Details: each account's order, fill and latency, or why it did not "
                    "trade; a refused alert's body as it arrived.", size="2",
                    color="var(--gray-11)"),
            _filters(),
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
