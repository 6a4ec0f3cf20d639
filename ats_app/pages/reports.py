"""Reports: how a link, strategy or account really did, paper and live apart."""

import reflex as rx

from ats_app.components.charts import count_bars, equity_chart, pnl_bars, stat
from ats_app.components.layout import app_page
from ats_app.components.table import data_table
from ats_app.engine.core.clock import DAY_HINT
from ats_app.state.reports import ReportsState

LINK_COLUMNS = [
    ("Link", "link"), ("Mode", "mode"), ("Trades", "trades"), ("Win rate", "win_rate"),
    ("Net P&L ₹", "net_pnl"), ("Charges ₹", "charges"), ("Max drawdown ₹", "max_drawdown"),
]
STATS = [
    ("Closed trades", "trades"), ("Win rate", "win_rate"), ("Avg win ₹", "avg_win"),
    ("Avg loss ₹", "avg_loss"), ("Profit factor", "profit_factor"),
    ("Expectancy ₹", "expectancy"), ("Max drawdown ₹", "max_drawdown"),
    ("Charges ₹", "charges"), ("Net P&L ₹", "net_pnl"),
]


def _filters() -> rx.Component:
    return rx.flex(
        rx.select(ReportsState.scopes, value=ReportsState.scope,
                  on_change=ReportsState.set_scope, id="report-scope"),
        rx.segmented_control.root(
            rx.segmented_control.item("Paper", value="paper"),
            rx.segmented_control.item("Live", value="live"),
            value=ReportsState.mode, on_change=ReportsState.set_mode, id="report-mode",
        ),
        rx.input(placeholder=f"from {DAY_HINT}", value=ReportsState.date_from,
                 on_change=ReportsState.set_date_from, id="report-from", width="150px"),
        rx.input(placeholder=f"to {DAY_HINT}", value=ReportsState.date_to,
                 on_change=ReportsState.set_date_to, id="report-to", width="150px"),
        rx.button("Show", on_click=ReportsState.apply, id="report-apply"),
        gap="8px", wrap="wrap", align="center",
    )


def _chart_card(title: str, chart: rx.Component, empty: rx.Var) -> rx.Component:
    return rx.card(
        rx.text(title, weight="bold", size="2"),
        rx.cond(empty, rx.text("No closed trades in this scope.", color="var(--gray-11)",
                               size="2"), chart),
        width="100%",
    )


def reports_page() -> rx.Component:
    return app_page(
        rx.vstack(
            rx.heading("Reports", size="6"),
            rx.text("Closed trades only; charges are estimated per order with the paper "
                    "broker's model. Times IST.", size="2", color="var(--gray-11)"),
            _filters(),
            rx.cond(ReportsState.error != "",
                    rx.callout(ReportsState.error, color_scheme="red", id="report-error")),
            rx.flex(*[stat(label, ReportsState.figures[key], f"stat-{key}")
                      for label, key in STATS], gap="8px", wrap="wrap"),
            _chart_card("Equity curve (cumulative net P&L ₹)",
                        equity_chart(ReportsState.equity, [("equity", "net P&L ₹", "#4c6ef5")],
                                     "report-equity"),
                        ReportsState.equity.length() == 0),  # type: ignore[attr-defined]
            rx.grid(
                _chart_card("Daily net P&L ₹", pnl_bars(ReportsState.daily, "report-daily"),
                            ReportsState.daily.length() == 0),  # type: ignore[attr-defined]
                _chart_card("Exit reasons", count_bars(ReportsState.reasons, "report-reasons"),
                            ReportsState.reasons.length() == 0),  # type: ignore[attr-defined]
                columns=rx.breakpoints(initial="1", md="2"), gap="12px", width="100%",
            ),
            rx.heading("By link", size="4"),
            data_table(ReportsState.links, LINK_COLUMNS, table_id="report-links",
                       empty="No closed trades yet.", stack_on_phone=True),
            width="100%", spacing="3",
        )
    )
