"""Pure rules: each limit refuses at its boundary and not before; market hours with a
controllable clock (15:31 refused, holidays, weekends); the schedule's plan."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

import pytest

from ats_app.engine.market import hours as market_hours
from ats_app.engine.market.hours import Calendar
from ats_app.engine.risk import policy, schedules
from ats_app.engine.risk.policy import Approved, Denied, Limits, OrderContext, RiskState

CAL = Calendar({date(2026, 11, 24): "Guru Nanak Jayanti"})
WED = "2026-12-02"


def at(hhmmss: str, day: str = WED) -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmmss}+05:30")


def decide(limits: Limits, lots: int | None = 1, when: str = "10:00:00", **state: object):
    return policy.check(OrderContext(at=at(when), lots=lots), limits,
                      RiskState(calendar=CAL, **state))  # type: ignore[arg-type]


OFF = Limits(max_open_positions=None, max_lots_per_order=None, max_orders_per_day=None)


@pytest.mark.parametrize(
    ("limits", "lots", "state_ok", "state_refused", "rule"),
    [
        pytest.param(Limits(max_open_positions=3), 1, {"open_positions": 2},
                     {"open_positions": 3}, "max_open_positions", id="open-positions-3"),
        pytest.param(Limits(max_orders_per_day=4), 1, {"orders_today": 3},
                     {"orders_today": 4}, "max_orders_per_day", id="orders-per-day-4"),
        pytest.param(Limits(daily_loss_limit=Decimal(1000)), 1,
                     {"realized_pnl": Decimal("-600"), "unrealized_pnl": Decimal("-399.99")},
                     {"realized_pnl": Decimal("-600"), "unrealized_pnl": Decimal("-400")},
                     "daily_loss", id="loss-limit-1000-realized-plus-unrealized"),
        pytest.param(Limits(max_open_positions=0), 1, None, {"open_positions": 0},
                     "max_open_positions", id="zero-means-none-allowed"),
    ],
)
def test_state_limit_refuses_at_the_boundary_not_before(
    limits: Limits, lots: int, state_ok: dict | None, state_refused: dict, rule: str
) -> None:
    if state_ok is not None:
        assert isinstance(decide(limits, lots, **state_ok), Approved)
    denied = decide(limits, lots, **state_refused)
    assert isinstance(denied, Denied) and denied.rule == rule, denied


def test_max_lots_per_order_allows_the_max_and_refuses_one_more() -> None:
    limits = Limits(max_lots_per_order=5)
    assert isinstance(decide(limits, lots=5), Approved)
    denied = decide(limits, lots=6)
    assert isinstance(denied, Denied) and denied.rule == "max_lots_per_order"
    assert "6 lots" in denied.reason
    assert isinstance(decide(limits, lots=None), Approved)  # the pre-check: lots not known yet


def test_a_profit_never_trips_the_loss_limit() -> None:
    limits = Limits(daily_loss_limit=Decimal(1))
    assert isinstance(decide(limits, realized_pnl=Decimal(5000)), Approved)


@pytest.mark.parametrize(
    ("when", "day", "approved", "words"),
    [
        pytest.param("09:14:59", WED, False, "opens at 09:15", id="before-open"),
        pytest.param("09:15:00", WED, True, "", id="at-open"),
        pytest.param("15:14:59", WED, True, "", id="just-before-square-off"),
        pytest.param("15:15:00", WED, False, "square-off", id="at-square-off"),
        pytest.param("15:31:00", WED, False, "closed at 15:30", id="15-31"),
        pytest.param("10:00:00", "2026-11-24", False, "Guru Nanak", id="holiday"),
        pytest.param("10:00:00", "2026-12-05", False, "weekend", id="saturday"),
        pytest.param("10:00:00", "2026-12-06", False, "weekend", id="sunday"),
    ],
)
def test_market_hours_and_square_off_time(when: str, day: str, approved: bool,
                                          words: str) -> None:
    d = policy.check(OrderContext(at=at(when, day)), OFF, RiskState(calendar=CAL))
    assert d.approved is approved, d
    assert words in d.reason


def test_session_ends_at_15_30_exclusive_whatever_the_square_off() -> None:
    late = Limits(square_off_at=time(15, 30))
    assert isinstance(policy.check(OrderContext(at=at("15:29:59")), late, RiskState(calendar=CAL)),
                      Approved)
    d = policy.check(OrderContext(at=at("15:30:00")), late, RiskState(calendar=CAL))
    assert isinstance(d, Denied) and d.rule == "market_hours"


def test_utc_input_is_judged_in_ist() -> None:
    # 10:01 UTC is 15:31 IST.
    ok, why = market_hours.is_open(datetime.fromisoformat(f"{WED}T10:01:00+00:00"), CAL)
    assert not ok and "15:31:00 IST" in why
    ok, _ = market_hours.is_open(datetime.fromisoformat(f"{WED}T04:00:00+00:00"), CAL)
    assert ok  # 09:30 IST


def test_always_mode_trades_at_any_hour_but_the_kill_switch_still_holds() -> None:
    sunday_night = OrderContext(at=at("23:00:00", "2026-12-06"))
    assert isinstance(policy.check(sunday_night, OFF, RiskState(market_mode="always")), Approved)
    d = policy.check(sunday_night, OFF, RiskState(market_mode="always", halted=True))
    assert isinstance(d, Denied) and d.rule == "halted"


def test_first_refusal_wins_in_the_documented_order() -> None:
    everything = {"open_positions": 9, "orders_today": 99, "realized_pnl": Decimal(-10**6)}
    limits = Limits(daily_loss_limit=Decimal(1))
    assert decide(limits, lots=99, halted=True, **everything).rule == "halted"
    assert decide(limits, lots=99, when="16:00:00", **everything).rule == "market_hours"
    assert decide(limits, lots=99, **everything).rule == "daily_loss"
    assert decide(Limits(), lots=99, **everything).rule == "max_orders_per_day"


def test_limits_check_their_own_arguments() -> None:
    with pytest.raises(ValueError):
        Limits(max_open_positions=-1)
    with pytest.raises(ValueError):
        Limits(daily_loss_limit=Decimal(0))
    with pytest.raises(ValueError):
        Limits(square_off_at=time(15, 45))


def test_holiday_file_override_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = market_hours.default_calendar()
    assert shipped.holiday(date(2026, 1, 26)) == "Republic Day"
    mine = tmp_path / "holidays.json"
    mine.write_text(json.dumps({"holidays": [{"date": WED, "name": "Exchange outage"}]}))
    monkeypatch.setenv("NSE_HOLIDAYS_FILE", str(mine))
    ok, why = market_hours.is_open(at("10:00:00"))
    assert not ok and "Exchange outage" in why
    assert market_hours.default_calendar().holiday(date(2026, 1, 26)) is None


def test_fake_clock_is_ignored_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATS_FAKE_NOW", "2026-12-02T15:31:00+05:30")
    monkeypatch.setenv("ATS_ENV", "dev")
    assert market_hours.now() == at("15:31:00")
    monkeypatch.setenv("ATS_ENV", "prod")
    assert abs((market_hours.now() - datetime.now(market_hours.IST)).total_seconds()) < 5


def test_wall_clock_keeps_the_distance_from_a_frozen_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RQ's scheduler runs on the wall clock: a run 5 h ahead on a frozen (test) clock is
    due 5 h from the real now, whatever date the frozen clock shows."""
    monkeypatch.setenv("ATS_ENV", "dev")
    monkeypatch.setenv("ATS_FAKE_NOW", "2026-12-02T10:00:00+05:30")
    due = market_hours.wall_clock(at("15:00:00"))
    ahead = (due - datetime.now(UTC)).total_seconds()
    assert abs(ahead - 5 * 3600) < 5, ahead
    monkeypatch.delenv("ATS_FAKE_NOW")
    real = datetime(2031, 1, 1, 9, 15, tzinfo=market_hours.IST)
    assert market_hours.wall_clock(real) == real  # no fake clock: the time itself


def test_plan_skips_holidays_and_weekends_and_next_trading_day_jumps_them() -> None:
    assert schedules.plan(date(2026, 11, 24), CAL, {time(15, 15)}) == []
    assert schedules.plan(date(2026, 12, 5), CAL, {time(15, 15)}) == []
    runs = schedules.plan(date(2026, 11, 25), CAL, {time(15, 15), time(15, 0)})
    assert [(r.name, r.at) for r in runs] == [
        ("pre_open", time(8, 45)), ("square_off", time(15, 0)), ("square_off", time(15, 15)),
        ("daily_summary", time(15, 45))]
    assert market_hours.next_trading_day(date(2026, 11, 23), CAL) == date(2026, 11, 25)
    assert market_hours.next_trading_day(date(2026, 12, 4), CAL) == date(2026, 12, 7)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param("2026-12-02T08:00:00", ("2026-12-02", "09:15"), id="before-open"),
        pytest.param("2026-12-02T10:00:30", ("2026-12-02", "10:01"), id="in-session"),
        pytest.param("2026-12-02T15:29:10", ("2026-12-03", "09:15"), id="last-minute"),
        pytest.param("2026-12-04T16:00:00", ("2026-12-07", "09:15"), id="friday-evening"),
    ],
)
def test_risk_watch_chains_minute_by_minute_inside_the_session(now: str,
                                                               expected: tuple) -> None:
    run = schedules.next_watch(datetime.fromisoformat(now + "+05:30"), CAL)
    assert (run.day.isoformat(), f"{run.at:%H:%M}") == expected
