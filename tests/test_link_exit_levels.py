"""A link's stop-loss, target and trailing stop are each optional: empty, 0 or "off" turns
that level off. Some exit must remain: a level, or the user's word that the alerts exit."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from ats_app.engine.core.errors import ValidationError
from ats_app.engine.tenants import users, webhooks
from ats_app.state.webhooks import _link_row


@pytest.fixture
def uid(session: Session) -> int:
    return users.create_user(session, "trader", "password123", "T", "R").id


def _create(session: Session, uid: int, **levels: object) -> webhooks.LinkView:
    fields: dict = {"stop_loss_pct": None, "target_pct": None, "trailing_stop_pct": None,
                    **levels}
    view, _secret = webhooks.create_link(session, uid, name="n", accounts=[], strategy_id=None,
                                         paper=True, **fields)
    return view


def test_zero_empty_and_off_turn_a_level_off(session: Session, uid: int) -> None:
    view = _create(session, uid, stop_loss_pct="5", target_pct="0", trailing_stop_pct=0)
    assert (view.stop_loss_pct, view.target_pct, view.trailing_stop_pct) == (5, None, None)
    view = _create(session, uid, stop_loss_pct=" ", target_pct="OFF", trailing_stop_pct="0.0",
                   exits_by_signal=True)
    assert (view.stop_loss_pct, view.target_pct, view.trailing_stop_pct) == (None, None, None)
    assert webhooks.get_link(session, uid, view.id).exits_by_signal is True
    row = _link_row(view, {}, {})
    assert row["rules"] == "SL off · target off · trail off · exits by alert"
    assert row["sl"] == row["target"] == row["tsl"] == ""  # the edit form starts empty


@pytest.mark.parametrize("levels", [
    {},
    {"stop_loss_pct": "0", "target_pct": "", "trailing_stop_pct": 0},
])
def test_every_exit_off_is_refused(session: Session, uid: int, levels: dict) -> None:
    with pytest.raises(ValidationError) as err:
        _create(session, uid, **levels)
    assert "every exit is off" in str(err.value) and "exits_by_signal" in str(err.value)
    assert err.value.field == "stop_loss_pct"
    view = _create(session, uid, target_pct="40")
    with pytest.raises(ValidationError, match="every exit is off"):
        webhooks.update_link(session, uid, view.id, name="n", accounts=[], strategy_id=None,
                             stop_loss_pct=None, target_pct="0", trailing_stop_pct=None,
                             paper=True, enabled=True)
    updated = webhooks.update_link(session, uid, view.id, name="n", accounts=[],
                                   strategy_id=None, stop_loss_pct=None, target_pct="0",
                                   trailing_stop_pct="3", paper=True, enabled=True)
    assert (updated.target_pct, updated.trailing_stop_pct) == (None, 3)


@pytest.mark.parametrize("field,value,message", [
    ("trailing_stop_pct", "-1", "must be greater than 0 and at most 99 (0 or empty: off)"),
    ("stop_loss_pct", "nan", "must be greater than 0"),
    ("target_pct", "1001", "at most 1000"),
    ("target_pct", "ten", "must be a number or off"),
])
def test_bad_levels_are_named(session: Session, uid: int, field: str, value: str,
                              message: str) -> None:
    levels = {"stop_loss_pct": "5", field: value}
    with pytest.raises(ValidationError) as err:
        _create(session, uid, **levels)
    assert err.value.field == field and message in str(err.value)
