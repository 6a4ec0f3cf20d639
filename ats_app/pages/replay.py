"""Replay: what other stop-loss, target and trailing settings would have done to real trades."""

import reflex as rx

from ats_app.components.charts import equity_chart
from ats_app.components.confirm import confirm_dialog
from ats_app.components.layout import app_page
from ats_app.components.table import data_table
from ats_app.state.replay import TV, ReplayState

GRID_COLUMNS = [
    ("Stop-loss", "sl"), ("Target", "target"), ("Trail", "tsl"), ("Net P&L ₹", "net_pnl"),
    ("Trades", "trades"), ("Win rate", "win_rate"), ("Gross P&L ₹", "gross_pnl"),
    ("Max drawdown ₹", "max_drawdown"),
]
RUN_COLUMNS = [("Run", "label"), ("Status", "status"), ("Progress", "progress"),
               ("Started", "created")]
HINT = "percent, comma list: 0.2,0.5 (0 = off)"


def _grid_input(label: str, value: rx.Var, handler: rx.EventHandler, input_id: str):
    return rx.vstack(rx.text(label, size="2", weight="medium"),
                     rx.input(value=value, on_change=handler, id=input_id, width="150px"),
                     spacing="1")


def _form() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.text("Trades to replay", weight="bold"),
            rx.select(ReplayState.sources, value=ReplayState.source,
                      on_change=ReplayState.set_source, id="replay-source"),
            rx.cond(
                ReplayState.source == TV,
                rx.vstack(
                    rx.upload(
                        rx.text(rx.cond(ReplayState.csv_name != "",
                                        "Loaded: " + ReplayState.csv_name,
                                        "Drop the Strategy Tester's 'List of trades' CSV here, "
                                        "or click to choose it"), size="2"),
                        id="tv_csv", accept={"text/csv": [".csv"]}, max_files=1, multiple=False,
                        on_drop=ReplayState.upload(rx.upload_files(upload_id="tv_csv")),
                        border="1px dashed var(--gray-7)", padding="12px", width="100%",
                        # react-dropzone keeps its file input as a 1-px clipped box; the zone
                        # opens the dialog itself, so the input need not be laid out at all.
                        style={"& input[type=file]": {"display": "none !important"}},
                    ),
                    rx.flex(
                        rx.vstack(rx.text("Symbol the export traded", size="2",
                                          weight="medium"),
                                  rx.input(placeholder="e.g. SBIN-EQ", value=ReplayState.symbol,
                                           on_change=ReplayState.set_symbol,
                                           id="replay-symbol"), spacing="1"),
                        rx.vstack(rx.text("Exchange", size="2", weight="medium"),
                                  rx.input(placeholder="NSE", value=ReplayState.exchange,
                                           on_change=ReplayState.set_exchange,
                                           id="replay-exchange", width="90px"), spacing="1"),
                        gap="8px", wrap="wrap"),
                    width="100%",
                ),
            ),
            rx.flex(
                _grid_input("Stop-loss %", ReplayState.sl, ReplayState.set_sl, "replay-sl"),
                _grid_input("Target %", ReplayState.target, ReplayState.set_target,
                            "replay-target"),
                _grid_input("Trailing %", ReplayState.tsl, ReplayState.set_tsl, "replay-tsl"),
                gap="8px", wrap="wrap"),
            rx.text(HINT, size="1", color="var(--gray-11)"),
            rx.button("Replay", on_click=ReplayState.start, id="replay-start",
                      loading=ReplayState.watching),
            width="100%",
        ),
        width="100%",
    )


def _progress() -> rx.Component:
    return rx.cond(
        ReplayState.run_id > 0,
        rx.vstack(
            rx.hstack(rx.text("Run #", ReplayState.run_id, ": ", ReplayState.status,
                              weight="bold", id="replay-status"),
                      rx.text(ReplayState.progress_text, size="2", color="var(--gray-11)")),
            rx.progress(value=ReplayState.progress, width="100%", id="replay-progress"),
            width="100%",
        ),
    )


def _heat() -> rx.Component:
    return rx.card(
        rx.text("Heat map: net P&L ₹, stop-loss × target (trail as chosen)", weight="bold",
                size="2"),
        rx.box(
            rx.table.root(
                rx.table.header(rx.table.row(rx.foreach(
                    ReplayState.heat_head, lambda h: rx.table.column_header_cell(h)))),
                rx.table.body(rx.foreach(ReplayState.heat, lambda row: rx.table.row(
                    rx.foreach(row, lambda c: rx.table.cell(
                        c["text"], background=c["bg"], white_space="nowrap"))))),
                size="1", id="replay-heat",
            ),
            overflow_x="auto", width="100%",
        ),
        width="100%",
    )


def _row_actions(row: rx.Var) -> rx.Component:
    return rx.hstack(
        rx.button("Chart", size="1", variant=rx.cond(ReplayState.chosen == row["key"],
                                                     "solid", "soft"),
                  on_click=ReplayState.choose(row["key"])),
        rx.cond(ReplayState.run_link > 0,
                rx.button("Apply to link", size="1", color_scheme="green", variant="soft",
                          on_click=ReplayState.ask_apply(row["key"]))),
    )


def replay_page() -> rx.Component:
    return app_page(
        rx.vstack(
            rx.heading("What-if replay", size="6"),
            rx.text("Trades replayed on the broker's 1-minute candles (cached) under each "
                    "setting; rules in the README. Long trades only. Runs in the background.",
                    size="2", color="var(--gray-11)"),
            rx.cond(ReplayState.error != "",
                    rx.callout(ReplayState.error, color_scheme="red", id="replay-error")),
            rx.cond(ReplayState.message != "",
                    rx.callout(ReplayState.message, color_scheme="green", id="replay-message")),
            _form(),
            _progress(),
            confirm_dialog(ReplayState.confirm_apply != "", "Apply this setting to the link?",
                           ReplayState.apply_text, ReplayState.apply_to_link,
                           ReplayState.cancel_apply, "Apply", "apply-setting"),
            rx.cond(
                ReplayState.rows.length() > 0,  # type: ignore[attr-defined]
                rx.vstack(
                    rx.card(
                        rx.text("Equity trade by trade (net ₹): ", ReplayState.chosen_label,
                                " beside what happened", weight="bold", size="2"),
                        equity_chart(ReplayState.equity,
                                     [("replay", "this setting ₹", "#4c6ef5"),
                                      ("actual", "actual ₹", "#868e96")],
                                     "replay-equity"),
                        width="100%",
                    ),
                    _heat(),
                    rx.text("Settings, best net P&L first", weight="bold"),
                    data_table(ReplayState.rows, GRID_COLUMNS, _row_actions,
                               table_id="replay-grid", stack_on_phone=True,
                               phone_first=("sl", "target", "tsl", "net_pnl")),
                    width="100%",
                ),
            ),
            rx.text("Recent replays", weight="bold"),
            data_table(ReplayState.runs, RUN_COLUMNS,
                       lambda r: rx.button("Open", size="1", variant="soft",
                                           on_click=ReplayState.open_run(r["id"])),
                       table_id="replay-runs", empty="No replays yet.", stack_on_phone=True),
            width="100%", spacing="3",
        )
    )
