"""Orders: history with filters, paging, CSV/JSON download and bulk delete."""

import reflex as rx

from ats_app.components.confirm import confirm_dialog
from ats_app.components.layout import app_page
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
    ("Time (UTC)", "created_at"),
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


def _filters() -> rx.Component:
    return rx.form(
        rx.hstack(
            rx.input(name="date_from", type="date", id="filter-date_from"),
            rx.input(name="date_to", type="date", id="filter-date_to"),
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


def _row(row: rx.Var) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.checkbox(
                checked=OrdersState.selected.contains(row["id"]),
                on_change=lambda _: OrdersState.toggle(row["id"]),
            )
        ),
        *[rx.table.cell(row[key]) for _, key in COLUMNS],
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
            rx.box(
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            rx.table.column_header_cell(""),
                            *[rx.table.column_header_cell(h) for h, _ in COLUMNS],
                        )
                    ),
                    rx.table.body(rx.foreach(OrdersState.rows, _row)),
                    size="1",
                    variant="surface",
                    id="orders",
                    width="100%",
                ),
                overflow_x="auto",
                width="100%",
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
