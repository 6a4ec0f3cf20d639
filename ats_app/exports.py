"""Times in exports (CSV, JSON) read by programs and by people: ISO 8601 in IST, offset
+05:30 (`clock.iso_ist`), the day a trader means without losing the instant.

The engine's order and position views carry UTC; the dashboard's download and the CLI's
`orders export` / `positions list --json` pass through here so that they agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

from ats_app.engine.core.clock import iso_ist
from ats_app.engine.execution.order_history import OrderView

POSITION_TIMES = ("opened_at", "closed_at")


def _iso_ist(text: str) -> str:
    return iso_ist(datetime.fromisoformat(text))


def orders_in_ist(orders: Iterable[OrderView]) -> Iterator[OrderView]:
    for o in orders:
        yield replace(o, created_at=_iso_ist(o.created_at))


def position_in_ist(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _iso_ist(v) if k in POSITION_TIMES and v else v for k, v in row.items()}
