"""Plain data tables from a list of dict rows."""

from __future__ import annotations

from collections.abc import Callable

import reflex as rx


def data_table(
    rows: rx.Var,
    columns: list[tuple[str, str]],
    actions: Callable[[rx.Var], rx.Component] | None = None,
    table_id: str = "table",
    empty: str = "Nothing here yet.",
) -> rx.Component:
    """`columns` are (header, key) pairs; `actions(row)` renders a last cell per row."""
    headers = [rx.table.column_header_cell(h) for h, _ in columns]
    if actions is not None:
        headers.append(rx.table.column_header_cell(""))

    def _row(row: rx.Var) -> rx.Component:
        cells = [rx.table.cell(row[key]) for _, key in columns]
        if actions is not None:
            cells.append(rx.table.cell(actions(row)))
        return rx.table.row(*cells)

    return rx.cond(
        rows.length() > 0,  # type: ignore[attr-defined]
        rx.box(
            rx.table.root(
                rx.table.header(rx.table.row(*headers)),
                rx.table.body(rx.foreach(rows, _row)),
                variant="surface",
                size="1",
                id=table_id,
                width="100%",
            ),
            overflow_x="auto",
            width="100%",
        ),
        rx.text(empty, color="var(--gray-10)", id=f"{table_id}-empty"),
    )
