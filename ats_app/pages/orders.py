"""Orders: history with filters, paging, CSV/JSON download and bulk delete."""

import reflex as rx

from ats_app.components.confirm import confirm_dialog
from ats_app.components.layout import app_page
from ats_app.components.status import badge, stamp
from ats_app.components.table import data_table
from ats_app.engine.core.clock import DAY_HINT
from ats_app.state.orders import OrdersState

STATUSES = [
    "",
    "CREATED",
    "SUBMITTING",
    "UNKNOWN",
    "OPEN",
    "TRIGGER_PENDING",
    "PARTIALLY_FILLED",
    "FILLED",
    "CANCEL_PENDING",
    "CANCELLED",
    "REJECTED",
    "FAILED",
]
COLUMNS = [
    ("Time", "created_ist"),
    ("Link", "link"),
    ("Account", "account"),
    ("Symbol", "tradingsymbol"),
    ("Side", "side"),
    ("Qty", "quantity"),
    ("Status", "status"),
    ("Mode", "mode"),
    ("Requested", "requested_price"),
    ("Fill", "fill_price"),
    ("Slippage", "slippage"),
    ("Reason", "reason"),
]


def _select(name: str, options: rx.Var | list, label: str) -> rx.Component:
    if isinstance(options, list):
        opts = [rx.el.option(o or f"any {label}", value=o) for o in options]
    else:
        opts = [
            rx.el.option(f"any {label}", value=""),
            rx.foreach(options, lambda o: rx.el.option(o[1], value=o[0])),
        ]
    return rx.el.select(
        *opts, name=name, id=f"filter-{name}", style={"padding": "6px", "minWidth": "130px"}
    )


def _day_input(name: str, label: str) -> rx.Component:
    return rx.hstack(
        rx.text(label, size="2", color="var(--gray-11)"),
        rx.input(name=name, placeholder=DAY_HINT, id=f"filter-{name}", width="120px"),
        align="center",
        spacing="1",
    )


def _filters() -> rx.Component:
    return rx.form(
        rx.hstack(
            # Text, not type=date: the browser's date input follows its locale (mm/dd/yyyy).
            _day_input("date_from", "From"),
            _day_input("date_to", "To"),
            _select("strategy_id", OrdersState.strategy_options, "strategy"),
            _select("account_id", OrdersState.account_options, "account"),
            _select("status", STATUSES, "status"),
            rx.input(name="symbol", placeholder="Symbol contains", id="filter-symbol"),
            rx.button("Filter", type="submit", id="filter-apply"),
            wrap="wrap",
            spacing="2",
            align="center",
        ),
        on_submit=OrdersState.apply_filters,
        reset_on_submit=False,
    )


# A phone's card starts with what the order did.
PHONE_FIRST = ("tradingsymbol", "status", "side", "quantity", "fill_price", "created_ist")


def _select_box(row: rx.Var) -> rx.Component:
    return rx.checkbox(
        checked=OrdersState.selected.contains(row["id"]),
        on_change=lambda _: OrdersState.toggle(row["id"]),
        id="select-" + row["id"],
    )


def orders_page() -> rx.Component:
    return app_page(
        rx.vstack(
            rx.heading("Orders", size="6"),
            _filters(),
            rx.hstack(
                rx.text(OrdersState.page_label, id="orders-count"),
                rx.button("‹ Prev", size="1", variant="soft", on_click=OrdersState.move_page(-1)),
                rx.button("Next ›", size="1", variant="soft", on_click=OrdersState.move_page(1)),
                rx.spacer(),
                rx.button(
                    "Download CSV",
                    size="2",
                    on_click=OrdersState.download("csv"),
                    id="download-csv",
                ),
                rx.button(
                    "Download JSON",
                    size="2",
                    on_click=OrdersState.download("json"),
                    id="download-json",
                ),
                rx.button(
                    "Delete…",
                    size="2",
                    color_scheme="red",
                    variant="soft",
                    on_click=OrdersState.ask_delete,
                    id="bulk-delete",
                    disabled=OrdersState.total == 0,
                ),
                width="100%",
                wrap="wrap",
                align="center",
            ),
            rx.cond(OrdersState.filter_error != "",
                    rx.text(OrdersState.filter_error, color="var(--red-11)", size="2",
                            id="filter-error")),
            rx.text("Times and dates in IST.", size="2", color="var(--gray-11)"),
            data_table(
                OrdersState.rows,
                COLUMNS,
                table_id="orders",
                empty="No orders match.",
                render={"status": lambda r: badge(r["status"]),
                        "created_ist": lambda r: stamp(r["created_ist"])},
                stack_on_phone=True,
                phone_first=PHONE_FIRST,
                lead=_select_box,
            ),
            confirm_dialog(
                OrdersState.confirm_delete,
                "Delete orders",
                OrdersState.delete_label,
                OrdersState.delete,
                OrdersState.cancel_delete,
                "Delete",
                "delete-orders",
            ),
            spacing="3",
            width="100%",
        )
    )
