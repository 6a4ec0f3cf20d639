"""Plain data tables from a list of dict rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
        # A column: cells given an order (`phone_first`) move up the card; the rest keep theirs.
        "& tr": {"display": "flex", "flexDirection": "column",
                 "padding": "6px 0", "borderBottom": "1px solid var(--gray-5)"},
        "& td[data-head]": {"fontWeight": "bold"},
        "& td": {"display": "flex", "gap": "8px", "boxShadow": "none",
                 "padding": "2px 10px", "overflowWrap": "anywhere"},
        "& td[data-label]:not([data-label=''])::before": {
            "content": "attr(data-label)", "flex": "0 0 120px", "color": "var(--gray-11)",
        },
    }
}


LEAD, ACTIONS = "<lead>", "<actions>"


def card_order(keys: Sequence[str], phone_first: Sequence[str]) -> dict[str, int]:
    """Each cell's place in a phone's card: the lead cell, the `phone_first` columns, the
    actions, then every other column in table order. Empty when `phone_first` is: the card
    keeps the table's order."""
    if not phone_first:
        return {}
    unknown = set(phone_first) - set(keys)
    if unknown:
        raise ValueError(f"phone_first names no column: {sorted(unknown)}")
    ahead = [LEAD, *phone_first, ACTIONS]
    rest = [k for k in keys if k not in phone_first]
    return {k: i for i, k in enumerate([*ahead, *rest])}


def data_table(
    rows: rx.Var,
    columns: list[tuple[str, str]],
    actions: Callable[[rx.Var], rx.Component] | None = None,
    table_id: str = "table",
    empty: str = "Nothing here yet.",
    render: dict[str, Callable[[rx.Var], rx.Component]] | None = None,
    stack_on_phone: bool = False,
    phone_first: Sequence[str] = (),
    lead: Callable[[rx.Var], rx.Component] | None = None,
) -> rx.Component:
    """`columns` are (header, key) pairs; `actions(row)` renders a last cell per row and
    `lead(row)` a first one (a selection checkbox); `render[key](row)` renders that column's
    cell instead of its plain text. Stacked on a phone, a row's card starts with the lead, the
    `phone_first` columns in that order (the first in bold) and the actions, so what a trader
    acts on is on screen without scrolling; the other columns follow."""
    headers = [rx.table.column_header_cell(h) for h, _ in columns]
    if lead is not None:
        headers.insert(0, rx.table.column_header_cell(""))
    if actions is not None:
        headers.append(rx.table.column_header_cell(""))
    render = render or {}
    order = card_order([key for _, key in columns], phone_first)
    head = phone_first[0] if phone_first else None

    def _style(key: str) -> dict[str, int]:
        # CSS order only acts in the stacked card (a flex column); a table row ignores it.
        return {"order": order[key]} if order else {}

    def _row(row: rx.Var) -> rx.Component:
        cells = [
            rx.table.cell(render[key](row) if key in render else row[key],
                          custom_attrs={"data-label": header,
                                        **({"data-head": "1"} if key == head else {})},
                          style=_style(key))
            for header, key in columns
        ]
        if lead is not None:
            cells.insert(0, rx.table.cell(lead(row), style=_style(LEAD)))
        if actions is not None:
            cells.append(rx.table.cell(actions(row), style=_style(ACTIONS)))
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
