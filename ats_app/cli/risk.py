"""`risk` and `kill` CLI commands (plugged into `ats_app.cli.build_parser`).

    python -m ats_app.cli risk show --user U
    python -m ats_app.cli risk set --user U [--max-open-positions N|off]
        [--max-lots-per-order N|off] [--max-orders-per-day N|off] [--daily-loss-limit RUPEES|off]
        [--exit-on-loss-limit | --no-exit-on-loss-limit] [--square-off HH:MM]
    python -m ats_app.cli risk set --user U --account ID [--max-open-positions N|off]
        [--max-lots-per-order N|off]
    python -m ats_app.cli kill --user U --yes
    python -m ats_app.cli schedules ensure

`risk show` gives the user's limits and day, and under "accounts" each broker account's own
limits (None: only the user's apply) with what it holds now. `risk set --account ID` changes
that account's own limits instead of the user's; only the two per-account flags go with it.

Handlers return dicts and raise engine errors; `ats_app.cli.main` prints and maps exit codes.
"""

from __future__ import annotations

import argparse
from typing import Any

from ats_app.cli.common import CliError
from ats_app.engine.core.errors import ValidationError

__all__ = ["add_commands"]


def _user_id(ref: str) -> int:
    from ats_app.engine.store.db import session_scope
    from ats_app.engine.tenants import users

    with session_scope() as s:
        return users.resolve(s, ref)


def _view(user_id: int) -> dict[str, Any]:
    from ats_app.engine.market import hours
    from ats_app.engine.risk import gate
    from ats_app.engine.store.db import session_scope

    at = hours.now()
    with session_scope() as s:
        limits, state = gate.read_gate(s, user_id, at, unrealized=True)
        own = gate.accounts_view(s, user_id)
    is_open, why = hours.is_open(at, None, state.market_mode)
    return {
        "user_id": user_id,
        **gate.limits_view(limits),
        "halted": state.halted,
        "open_positions": state.open_positions,
        "orders_today": state.orders_today,
        "realized_pnl_today": f"{state.realized_pnl:.2f}",
        "market_open": is_open,
        "market": why,
        "accounts": own,
    }


def cmd_risk_show(args: argparse.Namespace) -> dict[str, Any]:
    return _view(_user_id(args.user))


def _limit_arg(text: str) -> int | None:
    return None if text.strip().lower() in ("off", "none") else int(text)


# What `risk set --account` refuses: these limits are the user's alone (an account has none).
_USER_ONLY_FLAGS = (
    ("max_orders_per_day", "--max-orders-per-day"),
    ("daily_loss_limit", "--daily-loss-limit"),
    ("exit_on_loss_limit", "--exit-on-loss-limit"),
    ("square_off", "--square-off"),
)


def _counts(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name in names:
        value = getattr(args, name)
        if value is not None:
            try:
                changes[name] = _limit_arg(value)
            except ValueError:
                raise ValidationError(
                    f"--{name.replace('_', '-')} takes a whole number or 'off', got {value!r}",
                    field=name,
                ) from None
    return changes


def _set_account(args: argparse.Namespace) -> dict[str, Any]:
    from ats_app.engine.risk import gate
    from ats_app.engine.store.db import session_scope

    for name, flag in _USER_ONLY_FLAGS:
        if getattr(args, name) is not None:
            # Bad usage (exit 2), before any database work: saying which flag, and why.
            flag = flag if getattr(args, name) is not False else "--no-exit-on-loss-limit"
            raise CliError(
                f"{flag} is a user-wide limit: with --account only --max-open-positions "
                "and --max-lots-per-order can be set",
                2,
            )
    changes = _counts(args, gate.ACCOUNT_LIMIT_FIELDS)
    if not changes:
        raise ValidationError(
            "nothing to set: give --max-open-positions and/or --max-lots-per-order")
    uid = _user_id(args.user)
    with session_scope() as s:
        gate.set_account_limits(s, uid, args.account, **changes)
    view = _view(uid)
    view["account"] = next(a for a in view["accounts"] if a["account_id"] == args.account)
    return view


def cmd_risk_set(args: argparse.Namespace) -> dict[str, Any]:
    from ats_app.engine.risk import gate
    from ats_app.engine.store.db import session_scope

    if args.account is not None:
        return _set_account(args)
    changes = _counts(args, ("max_open_positions", "max_lots_per_order", "max_orders_per_day"))
    if args.daily_loss_limit is not None:
        changes["daily_loss_limit"] = args.daily_loss_limit
    if args.exit_on_loss_limit is not None:
        changes["exit_on_loss_limit"] = args.exit_on_loss_limit
    if args.square_off is not None:
        changes["square_off_at"] = args.square_off
    if not changes:
        raise ValidationError("nothing to set: give at least one limit flag")
    uid = _user_id(args.user)
    with session_scope() as s:
        gate.set_limits(s, uid, **changes)
    if "square_off_at" in changes:
        _reschedule()
    return _view(uid)


def _reschedule() -> None:
    """A new square-off time needs its run on the scheduler (best effort: the worker's next
    start or the next scheduled run plans it too)."""
    import contextlib

    import redis

    from ats_app.engine.risk import schedules

    with contextlib.suppress(redis.RedisError, RuntimeError):
        schedules.ensure_scheduled()


def cmd_kill(args: argparse.Namespace) -> dict[str, Any]:
    from ats_app.engine.execution import halt

    if not args.yes:
        raise ValidationError(
            "the kill switch stops the bot, cancels open entry orders and "
            "exits every open position at market: confirm with --yes",
            field="yes",
        )
    report = halt.kill(_user_id(args.user), settle_seconds=args.settle)
    return report.as_dict()


def cmd_schedules_ensure(args: argparse.Namespace) -> dict[str, Any]:
    from ats_app.engine.risk import schedules

    return {"scheduled": schedules.ensure_scheduled()}


def add_commands(subparsers: Any, common_parent: argparse.ArgumentParser) -> None:
    """Add the `risk`, `kill` and `schedules` groups to the CLI's top-level subparsers."""
    group = subparsers.add_parser("risk", help="per-user and per-account risk limits")
    cmds = group.add_subparsers(dest="cmd", required=True)
    show = cmds.add_parser("show", parents=[common_parent], help="limits and today's usage")
    show.add_argument("--user", required=True)
    show.set_defaults(fn=cmd_risk_show)

    st = cmds.add_parser("set", parents=[common_parent], help="change limits ('off': no limit)")
    st.add_argument("--user", required=True)
    st.add_argument(
        "--account",
        type=int,
        metavar="ID",
        help="set this broker account's own max open positions / max lots per order "
        "('off': only the user's limits apply)",
    )
    st.add_argument("--max-open-positions", metavar="N")
    st.add_argument("--max-lots-per-order", metavar="N")
    st.add_argument("--max-orders-per-day", metavar="N")
    st.add_argument("--daily-loss-limit", metavar="RUPEES", help="realized + unrealized, or off")
    st.add_argument(
        "--exit-on-loss-limit",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also exit every position when the loss limit is hit",
    )
    st.add_argument("--square-off", metavar="HH:MM", help="IST, default 15:15")
    st.set_defaults(fn=cmd_risk_set)

    k = subparsers.add_parser(
        "kill",
        parents=[common_parent],
        help="kill switch: stop the bot, cancel open entry orders, exit every position",
    )
    k.add_argument("--user", required=True)
    k.add_argument("--yes", action="store_true", help="confirm")
    k.add_argument(
        "--settle",
        type=float,
        default=20.0,
        help="seconds to wait for entry orders in flight (default 20)",
    )
    k.set_defaults(fn=cmd_kill)

    sch = subparsers.add_parser("schedules", help="the trading day's scheduled jobs")
    sch_cmds = sch.add_subparsers(dest="cmd", required=True)
    sch_cmds.add_parser(
        "ensure",
        parents=[common_parent],
        help="(re)plan pre-open, square-off and risk watch on RQ's scheduler",
    ).set_defaults(fn=cmd_schedules_ensure)
