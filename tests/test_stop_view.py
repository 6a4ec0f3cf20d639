"""Where each position's stop lives, as the Positions page shows it (`execution.stop_view`)."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from ats_app.engine.execution.stop_view import StopView, state_of, stop_views
from ats_app.engine.store.models import Order, Position
from ats_app.engine.tenants import users
from ats_app.state.positions import with_stop


@pytest.mark.parametrize(("status", "position", "said", "warning"), [
    ("TRIGGER_PENDING", "OPEN", "resting", False),
    ("OPEN", "OPEN", "resting", False),
    ("FILLED", "CLOSED", "filled", False),
    ("SUBMITTING", "OPEN", "being placed", False),
    ("UNKNOWN", "OPEN", "not confirmed yet: being looked up in the book", True),
    ("CANCEL_PENDING", "EXITING", "being cancelled", False),
    ("REJECTED", "OPEN", "not at broker: rejected", True),
    ("CANCELLED", "OPEN", "not at broker: cancelled", True),
    ("FAILED", "EXITING", "not at broker: failed", True),
    ("CANCELLED", "CLOSED", "cancelled", False),  # our exit took it out: as it should
    ("REJECTED", "CLOSED", "not at broker: rejected", False),
    (None, "OPEN", "not at broker yet", True),
])
def test_what_a_trader_is_told(status: str | None, position: str, said: str,
                               warning: bool) -> None:
    assert state_of(status, position) == (said, warning)
    assert state_of("PARTIALLY_FILLED", "OPEN", 75, 150) == ("partly filled (75 of 150)", False)


def _position(s: Session, uid: int, broker_stop: bool, status: str = "OPEN") -> int:
    p = Position(user_id=uid, exchange="NFO", symbol="NIFTY26DEC24000CE", symbol_token="1",
                 quantity=75, entry_price_paise=10_000, stop_paise=9_500,
                 broker_stop=broker_stop, status=status)
    s.add(p)
    s.flush()
    assert p.id is not None
    return p.id


def _stop(s: Session, uid: int, pid: int, n: int, status: str, trigger: int,
          reason: str | None = None) -> None:
    s.add(Order(user_id=uid, position_id=pid, client_order_id=f"P{pid}S{n}", purpose="STOP",
                broker_order_id=f"26110000{pid}{n}", exchange="NFO",
                symbol="NIFTY26DEC24000CE", symbol_token="1", side="SELL",
                order_type="STOPLOSS_LIMIT", quantity=75, price_paise=trigger - 500,
                trigger_paise=trigger, status=status, reason=reason))
    s.flush()


def test_stop_views_reads_the_newest_stop_of_the_users_own_positions(session: Session) -> None:
    uid = users.create_user(session, "trader", "password123", "T", "R").id
    other = users.create_user(session, "other", "password123", "O", "R").id
    ours = _position(session, uid, broker_stop=False)
    resting = _position(session, uid, broker_stop=True)
    _stop(session, uid, resting, 0, "REJECTED", 9_500, "margin")
    _stop(session, uid, resting, 1, "TRIGGER_PENDING", 9_750)  # the replacement counts
    refused = _position(session, uid, broker_stop=True)
    _stop(session, uid, refused, 0, "REJECTED", 9_500, "Order price is beyond LPP")
    noted = _position(session, uid, broker_stop=True)
    _stop(session, uid, noted, 0, "CANCELLED", 9_500, "stop at broker")
    waiting = _position(session, uid, broker_stop=True)
    theirs = _position(session, other, broker_stop=True)
    _stop(session, other, theirs, 0, "TRIGGER_PENDING", 9_500)
    views = stop_views(session, uid, [ours, resting, refused, noted, waiting, theirs])
    assert set(views) == {ours, resting, refused, noted, waiting}  # never another user's
    assert views[ours] == StopView("ours", "", False)
    assert views[resting] == StopView("at broker", "resting", False, "97.50",
                                      f"26110000{resting}1")
    assert views[refused] == StopView("at broker", "not at broker: rejected", True, "95.00",
                                      f"26110000{refused}0", "Order price is beyond LPP")
    assert views[noted].reason == ""  # the note written with a new stop is no news
    assert views[waiting] == StopView("at broker", "not at broker yet", True)
    assert stop_views(session, other, [resting]) == {} and stop_views(session, uid, []) == {}
    row = with_stop({"id": str(refused)}, views[refused])
    assert (row["stop_where"], row["stop_state"], row["stop_warning"], row["broker_trigger"],
            row["broker_order_id"], row["stop_reason"]) == (
        "at broker", "not at broker: rejected", "1", "95.00", f"26110000{refused}0",
        "Order price is beyond LPP")
    assert with_stop({"id": "9"}, None)["stop_where"] == "ours"
