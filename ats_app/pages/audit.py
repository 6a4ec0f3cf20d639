"""Audit log: every action and refusal, in IST."""

import reflex as rx

from ats_app.components.layout import app_page
from ats_app.components.table import data_table
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
                    rx.input(name="day", type="date", id="audit-day"),
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
            data_table(
                AuditState.rows,
                [
                    ("Time (IST)", "time_ist"),
                    ("Category", "category"),
                    ("Action", "action"),
                    ("Subject", "subject"),
                    ("Detail", "detail"),
                ],
                table_id="audit",
                empty="No events.",
            ),
            spacing="3",
            width="100%",
        )
    )
