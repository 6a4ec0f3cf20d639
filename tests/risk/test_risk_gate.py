"""The gate with real databases and Redis: stored limits, the day's counts, the kill switch's
hold, the CLI; and an alert at 15:31 IST refused by a real RQ worker (recorded)."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta

import pytest

from ats_app.cli.common import CliError
from ats_app.cli.risk import add_commands as add_risk_commands
from ats_app.engine.core.errors import NotFound, ValidationError
from ats_app.engine.execution import halt
from ats_app.engine.risk import bot
from ats_app.engine.risk import gate as risk_gate
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Alert, BrokerAccount, Order, Position, RiskLimits
from ats_app.engine.tenants import accounts, users
from tests.risk.kit import (
    IN_SESSION,
    TRADING_DAY,
    all_orders,
    all_positions,
    audit_events,
    post_alert,
    run_burst_worker,
)

NOW = datetime.fromisoformat(IN_SESSION)


@pytest.fixture
def trader(database_url: str, redis_url: str) -> int:
    with session_scope() as s:
        uid = users.create_user(s, "trader", "password123", "T", "R").id
        bot.set_running(s, uid, True)
    return uid


def _order(uid: int, n: int, created: datetime, status: str = "FILLED") -> Order:
    return Order(user_id=uid, client_order_id=f"T{n}", purpose="ENTRY", exchange="NFO",
                 symbol="X", symbol_token="1", side="BUY", quantity=65, status=status,
                 created_at=created, updated_at=created)


def test_defaults_until_set_and_set_keeps_the_rest(trader: int) -> None:
    with session_scope() as s:
        assert risk_gate.get_limits(s, trader) == risk_gate.risk.DEFAULT_LIMITS
        risk_gate.set_limits(s, trader, max_orders_per_day=2, daily_loss_limit="1500.50",
                             square_off_at="15:05")
    with session_scope() as s:
        view = risk_gate.limits_view(risk_gate.get_limits(s, trader))
        risk_gate.set_limits(s, trader, max_open_positions=None)
    assert view["max_orders_per_day"] == 2 and view["daily_loss_limit"] == "1500.50"
    assert view["square_off_at"] == "15:05" and view["max_open_positions"] == 5
    with session_scope() as s:
        assert risk_gate.get_limits(s, trader).max_open_positions is None
        assert s.get(RiskLimits, trader).daily_loss_limit_paise == 150050
        for bad in ({"square_off_at": "16:00"}, {"max_lots_per_order": -1},
                    {"daily_loss_limit": "-5"}, {"max_orders_per_day": "1.5"}):
            with pytest.raises(ValidationError):
                risk_gate.set_limits(s, trader, **bad)


def test_orders_per_day_counts_todays_entries_in_ist(trader: int) -> None:
    with session_scope() as s:
        risk_gate.set_limits(s, trader, max_orders_per_day=2)
        ist_midnight = risk_gate.day_start(NOW)
        s.add(_order(trader, 1, ist_midnight - timedelta(seconds=1)))  # yesterday, IST
        s.add(_order(trader, 2, ist_midnight + timedelta(seconds=1)))
        s.add(_order(trader, 3, NOW - timedelta(minutes=1), status="FAILED"))  # never sent
    assert risk_gate.check_entry(trader, at=NOW) is None  # one today: the second may go
    with session_scope() as s:
        s.add(_order(trader, 4, NOW - timedelta(seconds=5)))
    refused = risk_gate.check_entry(trader, at=NOW, alert_id=7)
    assert refused and "max orders per day reached (2 of 2)" in refused
    (event,) = audit_events("risk.denied")
    assert json.loads(event.detail)["rule"] == "max_orders_per_day" and event.subject == "7"


def test_loss_limit_counts_realized_today_and_exits_when_configured(trader: int) -> None:
    with session_scope() as s:
        risk_gate.set_limits(s, trader, daily_loss_limit="1000", exit_on_loss_limit=True,
                             max_open_positions=None)
        base = dict(user_id=trader, exchange="NFO", symbol="X", symbol_token="1",
                    quantity=65, entry_price_paise=10000)
        s.add(Position(**base, status="CLOSED", realized_pnl_paise=-99999, closed_at=NOW))
        s.add(Position(**base, status="OPEN"))
    assert risk_gate.check_entry(trader, at=NOW) is None  # lost 999.99: not yet
    with session_scope() as s:
        s.add(Position(**base, status="CLOSED", realized_pnl_paise=-1, closed_at=NOW))
    refused = risk_gate.check_entry(trader, at=NOW)
    assert refused and "daily loss limit hit" in refused
    assert [p.status for p in all_positions() if p.status != "CLOSED"] == ["EXITING"]
    (event,) = audit_events("risk.exit_all")
    assert json.loads(event.detail)["reason"] == "loss_limit"


def test_kill_switch_holds_until_the_bot_is_started_again(trader: int) -> None:
    with session_scope() as s:
        halt.engage(s, trader)
    assert halt.halted(trader)
    refused = risk_gate.check_entry(trader, at=NOW)
    assert refused and "kill switch" in refused
    with session_scope() as s:  # a plain Stop/Start cycle later releases it
        bot.set_running(s, trader, True)
    assert not halt.halted(trader) and risk_gate.check_entry(trader, at=NOW) is None
    with session_scope() as s:
        halt.engage(s, trader)
    with session_scope() as s:
        assert halt.release(s, trader) and not halt.is_engaged(s, trader)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true")
    parser = argparse.ArgumentParser()
    add_risk_commands(parser.add_subparsers(dest="group", required=True), common)
    return parser


def test_cli_risk_show_set_and_kill_needs_yes(trader: int) -> None:
    parser = _parser()
    args = parser.parse_args(["risk", "set", "--user", "trader", "--max-lots-per-order", "3",
                              "--daily-loss-limit", "2500", "--exit-on-loss-limit",
                              "--square-off", "15:10", "--max-open-positions", "off"])
    out = args.fn(args)
    assert out["max_lots_per_order"] == 3 and out["daily_loss_limit"] == "2500.00"
    assert out["exit_on_loss_limit"] is True and out["square_off_at"] == "15:10"
    assert out["max_open_positions"] is None
    args = parser.parse_args(["risk", "show", "--user", "trader"])
    assert args.fn(args)["max_lots_per_order"] == 3
    args = parser.parse_args(["kill", "--user", "trader"])
    with pytest.raises(ValidationError, match="--yes"):
        args.fn(args)
    assert not halt.halted(trader)
    args = parser.parse_args(["kill", "--user", "trader", "--yes", "--settle", "0"])
    report = args.fn(args)
    assert report["halted"] is True and halt.halted(trader)
    with session_scope() as s:
        assert not bot.is_running(s, trader)


def _account(uid: int, label: str, client: str) -> int:
    with session_scope() as s:
        return accounts.add_account(s, uid, label=label, client_id=client, api_key="k",
                                    pin="1234", totp_secret="JBSWY3DPEHPK3PXP").id


def test_cli_risk_set_account_limits_are_the_accounts_own_and_scoped(trader: int) -> None:
    parser = _parser()
    mine = _account(trader, "main", "C1")
    spare = _account(trader, "spare", "C2")
    with session_scope() as s:
        other_user = users.create_user(s, "other", "password123", "O", "U").id
    theirs = _account(other_user, "theirs", "C3")

    def run(*argv: str) -> dict:
        args = parser.parse_args(["risk", "set", "--user", "trader", *argv])
        return args.fn(args)

    out = run("--account", str(mine), "--max-open-positions", "2", "--max-lots-per-order", "4")
    assert out["account"] == {"account_id": mine, "label": "main", "max_open_positions": 2,
                              "max_lots_per_order": 4, "open_positions": 0}
    # The user's own limits and the other account are untouched.
    assert out["max_open_positions"] == 5 and out["max_lots_per_order"] == 10
    by_id = {a["account_id"]: a for a in out["accounts"]}
    assert set(by_id) == {mine, spare}  # only this user's accounts are listed
    assert by_id[spare]["max_open_positions"] is None and by_id[spare]["max_lots_per_order"] is None
    # 'off' clears one limit and keeps the other.
    out = run("--account", str(mine), "--max-open-positions", "off")
    assert (out["account"]["max_open_positions"], out["account"]["max_lots_per_order"]) == (None, 4)
    args = parser.parse_args(["risk", "show", "--user", "trader"])
    shown = {a["account_id"]: a for a in args.fn(args)["accounts"]}
    assert shown[mine]["max_lots_per_order"] == 4 and shown[mine]["max_open_positions"] is None
    last = json.loads(audit_events("risk.account_limits_set")[-1].detail)
    assert last["account_id"] == mine and last["max_open_positions"] is None

    # Another user's account is not found and keeps its limits.
    with pytest.raises(NotFound):
        run("--account", str(theirs), "--max-open-positions", "1")
    # A user-wide flag with --account is bad usage (exit 2), and nothing changes.
    for flag in (["--max-orders-per-day", "3"], ["--daily-loss-limit", "100"],
                 ["--no-exit-on-loss-limit"], ["--square-off", "15:00"]):
        with pytest.raises(CliError, match="user-wide") as err:
            run("--account", str(mine), "--max-lots-per-order", "1", *flag)
        assert err.value.code == 2
    with pytest.raises(ValidationError, match="nothing to set"):
        run("--account", str(mine))
    with pytest.raises(ValidationError, match="whole number"):
        run("--account", str(mine), "--max-lots-per-order", "two")
    with session_scope() as s:
        assert s.get(BrokerAccount, theirs).max_open_positions is None
        row = s.get(BrokerAccount, mine)
        assert (row.max_open_positions, row.max_lots_per_order) == (None, 4)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_alert_at_15_31_ist_is_refused_and_recorded(world: dict,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATS_FAKE_NOW", f"{TRADING_DAY}T15:31:00+05:30")
    late = post_alert(world["links"]["a"], id="late-1")
    assert late["status"] == "accepted"  # the webhook answers fast; the gate decides in the job
    run_burst_worker()
    with session_scope() as s:
        alert = s.get(Alert, late["alert_id"])
    assert alert.status == "REJECTED" and "closed at 15:30" in alert.reason
    assert all_orders() == []  # no order row, nothing sent
    (event,) = audit_events("risk.denied")
    assert json.loads(event.detail)["rule"] == "market_hours"

    monkeypatch.setenv("ATS_FAKE_NOW", f"{TRADING_DAY}T15:14:00+05:30")
    ok = post_alert(world["links"]["a"], id="ok-1")
    run_burst_worker()
    (order,) = all_orders()
    assert order.alert_id == ok["alert_id"] and order.status == "FILLED"


def test_gate_reads_limits_kill_switch_and_day_fresh_in_one_statement(trader: int) -> None:
    """The entry path's risk reads: one statement, and a second read in the same session (the
    check under the lock) sees a limit or kill switch changed since the first."""
    from sqlalchemy import event

    from ats_app.engine.store.db import get_engine

    statements: list[str] = []

    def seen(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        statements.append(sql)

    event.listen(get_engine(), "before_cursor_execute", seen)
    with session_scope() as s:
        limits, state = risk_gate.read_gate(s, trader, NOW)
        event.remove(get_engine(), "before_cursor_execute", seen)
        assert len(statements) == 1, statements
        assert limits == risk_gate.risk.DEFAULT_LIMITS and not state.halted
        assert (state.open_positions, state.orders_today) == (0, 0)
        with session_scope() as other:
            risk_gate.set_limits(other, trader, max_orders_per_day=3)
            other.add(_order(trader, 1, NOW - timedelta(minutes=1)))
            other.add(_order(trader, 2, NOW - timedelta(minutes=1), status="SUBMITTING"))
        with session_scope() as other:
            halt.engage(other, trader)
        limits, state = risk_gate.read_gate(s, trader, NOW)
        assert limits.max_orders_per_day == 3 and state.halted
        # both orders are today's; the one still in flight will be a position
        assert (state.orders_today, state.open_positions) == (2, 1)
    with session_scope() as s:  # starting the bot again releases the kill switch
        bot.set_running(s, trader, False)
        bot.set_running(s, trader, True)
    with session_scope() as s:
        assert not risk_gate.read_gate(s, trader, NOW)[1].halted


def test_an_entry_filled_but_not_yet_a_position_still_holds_its_slot(trader: int) -> None:
    """The order-update stream and the follower commit an entry's fill, then open its
    position: in between, the fill must still count as an open position, or a second alert
    passes "max open positions" and both fill (seen under two workers' job threads)."""
    from ats_app.engine.store.models import utcnow

    with session_scope() as s:
        filled = _order(trader, 1, NOW)
        filled.filled_quantity, filled.updated_at = 65, utcnow()
        stale = _order(trader, 2, NOW)  # filled long ago and never opened: not a slot
        stale.filled_quantity, stale.updated_at = 65, utcnow() - timedelta(minutes=5)
        s.add(filled)
        s.add(stale)
    with session_scope() as s:
        assert risk_gate.read_gate(s, trader, NOW)[1].open_positions == 1
        position = Position(user_id=trader, exchange="NFO", symbol="X", symbol_token="1",
                            side="LONG", quantity=65, entry_price_paise=100, status="OPEN")
        s.add(position)
        s.flush()
        order = s.get(Order, filled.id)
        assert order is not None
        order.position_id = position.id
    with session_scope() as s:  # now the position counts, and the order no longer does
        assert risk_gate.read_gate(s, trader, NOW)[1].open_positions == 1
