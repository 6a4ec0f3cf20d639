"""Every time a person reads is IST with the zone named, from one formatter
(`clock.ist_stamp`); exports (CSV, JSON) give ISO 8601 with +05:30 (`clock.iso_ist`)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

from sqlmodel import Session

from ats_app.engine.core.clock import iso_ist, ist_stamp
from ats_app.engine.execution.order_history import OrderView
from ats_app.engine.store import audit_log
from ats_app.engine.store.models import AuditEvent, User
from ats_app.exports import orders_in_ist, position_in_ist
from ats_app.state.orders import order_row
from ats_app.state.positions import open_first, position_row

AT = datetime(2026, 12, 5, 9, 40, 5, 405_230, tzinfo=UTC)  # 15:10:05.405230 IST
LATE = datetime(2026, 12, 5, 19, 0, 0, tzinfo=UTC)  # 00:30 IST on the 6th: the IST day moves


def test_the_formats() -> None:
    assert ist_stamp(AT) == "2026-12-05 15:10:05 IST"
    assert ist_stamp(LATE) == "2026-12-06 00:30:00 IST"
    assert iso_ist(AT) == "2026-12-05T15:10:05.405230+05:30"
    assert datetime.fromisoformat(iso_ist(AT)) == AT  # the same instant, nothing lost


def _order(created: datetime) -> OrderView:
    return OrderView(
        id=1, alert_id=None, created_at=created.isoformat(), account="A", strategy=None,
        link="L", tradingsymbol="NIFTY08DEC2626000CE", symboltoken="1", exchange="NFO",
        side="BUY", quantity=65, filled_quantity=65, status="FILLED", mode="paper",
        requested_price=None, fill_price="70.15", slippage=None, broker_order_id=None,
        client_order_id="A1E1", reason=None)


def test_the_orders_page_shows_ist_and_exports_give_the_offset() -> None:
    row = order_row(_order(AT))
    assert row["created_ist"] == "2026-12-05 15:10:05 IST"
    (exported,) = orders_in_ist([_order(AT)])
    assert exported.created_at == "2026-12-05T15:10:05.405230+05:30"


def test_positions_show_open_and_close_times_in_ist() -> None:
    raw = {"id": 3, "status": "CLOSED", "pnl": "-12.50",
           "opened_at": AT.isoformat(), "closed_at": LATE.isoformat()}
    row = position_row(raw)
    assert (row["opened_ist"], row["closed_ist"]) == (
        "2026-12-05 15:10:05 IST", "2026-12-06 00:30:00 IST")
    assert position_row({**raw, "status": "OPEN", "closed_at": None})["closed_ist"] == ""
    # A closed position shows its exit price, not the instrument's price now.
    assert position_row({**raw, "ltp": "69.90"})["ltp"] == ""
    assert position_row({**raw, "status": "OPEN", "ltp": "69.90"})["ltp"] == "69.90"
    # the exit reason in words, which wrap (a code such as stop_loss_at_broker does not)
    assert position_row({**raw, "exit_reason": "stop_loss_at_broker"})["exit_reason"] == \
        "stop-loss at broker"
    cli = position_in_ist({**raw, "closed_at": None})
    assert (cli["opened_at"], cli["closed_at"]) == ("2026-12-05T15:10:05.405230+05:30", None)


def test_audit_page_and_its_export(session: Session) -> None:
    user = User(username="asha", password_hash="x", first_name="A", last_name="R")
    session.add(user)
    session.flush()
    session.add(AuditEvent(user_id=user.id, action="alert.received", subject="s", detail="{}",
                           created_at=AT))
    session.commit()
    (row,) = audit_log.list_events(session, user.id)  # type: ignore[arg-type]
    assert row["time_ist"] == "2026-12-05 15:10:05 IST"
    (exported,) = json.loads(audit_log.export_events([row], "json"))
    assert exported["time_ist"] == "2026-12-05T15:10:05.405230+05:30"
    assert list(exported) == list(audit_log.COLUMNS)
    (line,) = csv.DictReader(io.StringIO(audit_log.export_events([row], "csv")))
    assert line["time_ist"] == "2026-12-05T15:10:05.405230+05:30"


def test_open_positions_come_before_closed_ones() -> None:
    rows = [{"id": "5", "status": "CLOSED"}, {"id": "4", "status": "OPEN"},
            {"id": "3", "status": "CLOSED"}, {"id": "2", "status": "EXITING"}]
    assert [r["id"] for r in open_first(rows)] == ["4", "2", "5", "3"]
