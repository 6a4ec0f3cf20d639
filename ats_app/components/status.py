"""Cell renderers shared by the tables: a status as a coloured badge, a time as shown."""

from __future__ import annotations

import reflex as rx

# Colour says at a glance how it went: green traded, red did not, blue still going.
STATUS_COLORS = {
    "DONE": "green", "FILLED": "green", "ORDERED": "green",
    "PLACED": "blue", "PROCESSING": "blue", "ACCEPTED": "blue", "OPEN": "blue",
    "PARTIALLY_FILLED": "blue", "SUBMITTING": "blue", "QUEUED": "amber",
    "EXITING": "amber", "TRIGGER_PENDING": "blue", "CANCEL_PENDING": "amber",
    "REJECTED": "red", "FAILED": "red", "REFUSED": "red", "UNKNOWN": "amber",
}


def badge(value: rx.Var) -> rx.Component:
    """A status as a coloured badge; statuses not listed (IGNORED, CANCELLED) are grey."""
    return rx.cond(
        value != "",
        rx.match(
            value,
            *[(status, rx.badge(value, color_scheme=color))  # type: ignore[arg-type]
              for status, color in STATUS_COLORS.items()],
            rx.badge(value, color_scheme="gray"),
        ),
    )


def stamp(value: rx.Var) -> rx.Component:
    """A time from `clock.ist_stamp` ("2026-12-05 15:10:05 IST") that a narrow column breaks
    only between its date and its time of day, never inside the date at a hyphen."""
    parts = value.split(" ")  # type: ignore[attr-defined]
    return rx.cond(
        value != "",
        rx.text(
            rx.text(parts[0], as_="span", white_space="nowrap"),
            " ",
            rx.text(parts[1] + " " + parts[2], as_="span", white_space="nowrap"),
            as_="span",
        ),
    )
