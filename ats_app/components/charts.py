"""Charts shared by the Reports and Replay pages (Reflex's recharts)."""

from __future__ import annotations

import reflex as rx

GREEN, RED, INDIGO, GRAY = "#2f9e44", "#e03131", "#4c6ef5", "#868e96"


def equity_chart(data: rx.Var, lines: list[tuple[str, str, str]], chart_id: str,
                 x_key: str = "label") -> rx.Component:
    """Cumulative net P&L; `lines` are (data key, legend name, colour)."""
    return rx.box(
        rx.recharts.line_chart(
            *[rx.recharts.line(data_key=key, name=name, stroke=colour, dot=False,
                               type_="linear", is_animation_active=False)
              for key, name, colour in lines],
            rx.recharts.x_axis(data_key=x_key, tick={"fontSize": 11}),
            rx.recharts.y_axis(tick={"fontSize": 11}, width=70),
            rx.recharts.cartesian_grid(stroke_dasharray="3 3"),
            rx.recharts.graphing_tooltip(),
            rx.recharts.legend(),
            data=data, width="100%", height=260,
        ),
        id=chart_id, width="100%",
    )


def pnl_bars(data: rx.Var, chart_id: str) -> rx.Component:
    """Daily net P&L: gains green above zero, losses red below (rows: day, gain, loss)."""
    return rx.box(
        rx.recharts.bar_chart(
            rx.recharts.bar(data_key="gain", name="gain ₹", fill=GREEN, stack_id="d",
                            is_animation_active=False),
            rx.recharts.bar(data_key="loss", name="loss ₹", fill=RED, stack_id="d",
                            is_animation_active=False),
            rx.recharts.x_axis(data_key="day", tick={"fontSize": 11}),
            rx.recharts.y_axis(tick={"fontSize": 11}, width=70),
            rx.recharts.cartesian_grid(stroke_dasharray="3 3"),
            rx.recharts.graphing_tooltip(),
            data=data, width="100%", height=220,
        ),
        id=chart_id, width="100%",
    )


def count_bars(data: rx.Var, chart_id: str) -> rx.Component:
    """How many trades closed for each reason (rows: reason, count)."""
    return rx.box(
        rx.recharts.bar_chart(
            rx.recharts.bar(data_key="count", name="trades", fill=INDIGO,
                            is_animation_active=False),
            rx.recharts.x_axis(data_key="reason", tick={"fontSize": 11}),
            rx.recharts.y_axis(allow_decimals=False, tick={"fontSize": 11}, width=40),
            rx.recharts.graphing_tooltip(),
            data=data, width="100%", height=220,
        ),
        id=chart_id, width="100%",
    )


def stat(label: str, value: rx.Var | str, stat_id: str) -> rx.Component:
    return rx.card(
        rx.text(label, size="1", color="var(--gray-11)"),
        rx.text(value, size="4", weight="bold", id=stat_id),
        min_width="130px",
    )
