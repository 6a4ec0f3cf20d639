"""Plain data tables from a list of dict rows."""

from __future__ import annotations

from collections.abc import Callable

import reflex as rx

# Below this width a stacked table shows each row as a card of "header: value" lines, so a
# phone sees every column without scrolling sideways (the header's text comes from each
# cell's data-label; the header row itself is hidden).
STACK_BELOW = "640px"
STACKED = {
    f"@media (max-width: {STACK_BELOW})": {
        # height: something gives the table a fixed 0 height once it is a block (found in
        # Chromium: the rows then overflow into the scroll area, which clips them to nothing).
        "& table, & tbody, & tr, & td": {"display": "block", "width": "100%", "height": "auto"},
        "& thead, & td:empty": {"display": "none"},  # an empty value needs no line
        "& tr": {"padding": "6px 0", "borderBottom": "1px solid var(--gray-5)"},
        "& td": {"display": "flex", "gap": "8px", "boxShadow": "none",
                 "padding": "2px 10px", "overflowWrap": "anywhere"},
        "& td[data-label]:not([data-label=''])::before": {
            "content": "attr(data-label)", "flex": "0 0 120px", "color": "var(--gray-11)",
        },
    }
}


def data_table(
    rows: rx.Var,
    columns: list[tuple[str, str]],
    actions: Callable[[rx.Var], rx.Component] | None = None,
    table_id: str = "table",
    empty: str = "Nothing here yet.",
    render: dict[str, Callable[[rx.Var], rx.Component]] | None = None,
    stack_on_phone: bool = False,
) -> rx.Component:
    """`columns` are (header, key) pairs; `actions(row)` renders a last cell per row;
    `render[key](row)` renders that column's cell instead of its plain text."""
    headers = [rx.table.column_header_cell(h) for h, _ in columns]
    if actions is not None:
        headers.append(rx.table.column_header_cell(""))
    render = render or {}

    def _row(row: rx.Var) -> rx.Component:
        cells = [
            rx.table.cell(render[key](row) if key in render else row[key],
                          custom_attrs={"data-label": header})
            for header, key in columns
        ]
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
            style=STACKED if stack_on_phone else {},
        ),
        rx.text(empty, color="var(--gray-10)", id=f"{table_id}-empty"),
    )
