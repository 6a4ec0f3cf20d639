"""Audit log: every action and refusal, in IST."""

import reflex as rx

from ats_app.components.layout import app_page
from ats_app.components.status import stamp
from ats_app.components.table import data_table
from ats_app.engine.core.clock import DAY_HINT
from ats_app.state.audit import AuditState

CATEGORIES = [
    "",
    "auth",
    "account",
    "strategy",
    "webhook",
    "alert",
    "order",
    "position",
    "bot",
    "cli",
    "user",
]


def audit_page() -> rx.Component:
    return app_page(
        rx.vstack(
            rx.heading("Audit log", size="6"),
            rx.form(
                rx.hstack(
                    rx.el.select(
                        *[rx.el.option(c or "any category", value=c) for c in CATEGORIES],
                        name="category",
                        id="audit-category",
                        style={"padding": "6px"},
                    ),
                    # Text, not type=date: the browser's date input follows its locale.
                    rx.hstack(
                        rx.text("Day", size="2", color="var(--gray-11)"),
                        rx.input(name="day", placeholder=DAY_HINT, id="audit-day",
                                 width="120px"),
                        align="center",
                        spacing="1",
                    ),
                    rx.input(name="text", placeholder="Contains…", id="audit-text"),
                    rx.button("Filter", type="submit"),
                    rx.spacer(),
                    rx.button("Download CSV", type="button", on_click=AuditState.download("csv")),
                    rx.button("Download JSON", type="button", on_click=AuditState.download("json")),
                    wrap="wrap",
                    width="100%",
                ),
                on_submit=AuditState.apply_filters,
                reset_on_submit=False,
                width="100%",
            ),
            rx.cond(AuditState.filter_error != "",
                    rx.text(AuditState.filter_error, color="var(--red-11)", size="2",
                            id="audit-filter-error")),
            data_table(
                AuditState.rows,
                [
                    ("Time", "time_ist"),
                    ("Category", "category"),
                    ("Action", "action"),
                    ("Subject", "subject"),
                    ("Detail", "detail"),
                ],
                table_id="audit",
                empty="No events.",
                render={"time_ist": lambda r: stamp(r["time_ist"])},
                stack_on_phone=True,
            ),
            spacing="3",
            width="100%",
        )
    )
