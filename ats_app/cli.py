"""Operator CLI: `python -m ats_app.cli --help`.

With `--json` every command prints one JSON object on stdout. Errors go to stderr with exit
status 1 (the operation failed) or 2 (bad usage). A secret flag given as `-` is read from
standard input so it stays out of shell history.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from sqlmodel import Session

from ats_app.cli_instruments import add_instruments_commands
from ats_app.cli_monitor import add_monitor_commands
from ats_app.cli_notify import add_notify_commands
from ats_app.cli_risk import add_risk_commands
from ats_app.engine.core.config import ConfigError, settings
from ats_app.engine.core.errors import AtsError
from ats_app.engine.execution import order_history as orders
from ats_app.engine.risk import bot
from ats_app.engine.tenants import accounts, strategies, users, webhooks

SECRET_FLAGS = ("password", "api_key", "pin", "totp_secret")


class CliError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _read_stdin_secrets(args: argparse.Namespace) -> None:
    """Replace each secret flag given as '-' with one line of standard input, in flag order."""
    for name in SECRET_FLAGS:
        if getattr(args, name, None) == "-":
            line = sys.stdin.readline()
            if not line:
                raise CliError(f"--{name.replace('_', '-')} - : nothing on standard input", 2)
            setattr(args, name, line.rstrip("\r\n"))


def _with_session(fn: Callable[[Session, argparse.Namespace], dict[str, Any]]):
    def run(args: argparse.Namespace) -> dict[str, Any]:
        from ats_app.engine.store.db import session_scope

        with session_scope() as session:
            return fn(session, args)

    return run


def cmd_db_upgrade(args: argparse.Namespace) -> dict[str, Any]:
    from ats_app.engine.store.db import upgrade

    upgrade()
    return {"status": "ok", "database": _redacted_url(settings().database_url)}


def _redacted_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@_with_session
def cmd_user_create(session: Session, args: argparse.Namespace) -> dict[str, Any]:
    from ats_app.engine.tenants.bootstrap import account_from_env

    user = users.create_user(session, args.username, args.password, args.first, args.last)
    result = asdict(user)
    if user.is_admin:
        session.flush()
        result["bootstrap_account_id"] = account_from_env(session, settings())
    return result


@_with_session
def cmd_user_passwd(session: Session, args: argparse.Namespace) -> dict[str, Any]:
    uid = users.resolve(session, args.user)
    users.set_password(session, uid, args.password)
    return {"id": uid, "status": "password changed"}


@_with_session
def cmd_account_add(session: Session, args: argparse.Namespace) -> dict[str, Any]:
    view = accounts.add_account(
        session,
        users.resolve(session, args.user),
        label=args.label,
        client_id=args.client_id,
        api_key=args.api_key,
        pin=args.pin,
        totp_secret=args.totp_secret,
        base_url=args.base_url,
        egress_proxy=args.egress_proxy,
        egress_ip=args.egress_ip,
        egress_source_ip=args.source_ip,
        is_simulated=args.simulated,
    )
    return asdict(view)


@_with_session
def cmd_strategy_create(session: Session, args: argparse.Namespace) -> dict[str, Any]:
    return asdict(
        strategies.create_strategy(
            session, users.resolve(session, args.user), args.name, args.description
        )
    )


def _parse_link_accounts(values: list[str]) -> list[webhooks.LinkAccount]:
    result = []
    for v in values:
        acc, _, mult = v.partition(":")
        try:
            result.append(webhooks.LinkAccount(int(acc), int(mult) if mult else 1))
        except ValueError as exc:
            raise CliError(
                f"--account expects ACCOUNT_ID or ACCOUNT_ID:MULTIPLIER, got {v!r}", 2
            ) from exc
    return result


@_with_session
def cmd_webhook_create(session: Session, args: argparse.Namespace) -> dict[str, Any]:
    view, secret = webhooks.create_link(
        session,
        users.resolve(session, args.user),
        name=args.name,
        accounts=_parse_link_accounts(args.account or []),
        strategy_id=args.strategy,
        stop_loss_pct=args.sl,
        target_pct=args.target,
        trailing_stop_pct=args.tsl,
        paper=args.paper,
        queue_outside_hours=args.queue_outside_hours,
    )
    out = asdict(view)
    out["secret"] = secret
    return out


@_with_session
def cmd_bot(session: Session, args: argparse.Namespace) -> dict[str, Any]:
    uid = users.resolve(session, args.user)
    running = bot.set_running(session, uid, args.bot_action == "start")
    return {"user_id": uid, "running": running}


@_with_session
def cmd_orders_export(session: Session, args: argparse.Namespace) -> dict[str, Any]:
    rows = orders.list_orders(session, users.resolve(session, args.user))
    if args.json:
        key = "orders" if args.format == "json" else "csv"
        content: Any = (
            [asdict(r) for r in rows]
            if args.format == "json"
            else orders.export_orders(rows, "csv")
        )
        return {"count": len(rows), "format": args.format, key: content}
    sys.stdout.write(orders.export_orders(rows, args.format))
    if args.format == "json":
        sys.stdout.write("\n")
    return {}


def cmd_keygen(args: argparse.Namespace) -> dict[str, Any]:
    from ats_app.engine.tenants.secrets_box import generate_key

    return {"ATS_SECRET_KEY": generate_key()}


def cmd_worker(args: argparse.Namespace) -> dict[str, Any]:
    from ats_app.engine.services.worker import run_worker

    run_worker(burst=args.burst, queue_names=args.queues.split(",") if args.queues else None)
    return {}


def cmd_monitor(args: argparse.Namespace) -> dict[str, Any]:
    from ats_app.engine.services.monitor import run_monitor
    from ats_app.engine.services.processes import freeze_startup_heap

    freeze_startup_heap()
    run_monitor()
    return {}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p = argparse.ArgumentParser(
        prog="python -m ats_app.cli",
        description=__doc__,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="group", required=True)

    db = sub.add_parser("db", help="database").add_subparsers(dest="cmd", required=True)
    db.add_parser("upgrade", parents=[common], help="apply migrations").set_defaults(
        fn=cmd_db_upgrade
    )

    user = sub.add_parser("user", help="users").add_subparsers(dest="cmd", required=True)
    uc = user.add_parser("create", parents=[common], help="create a user (first = admin)")
    uc.add_argument("--username", required=True)
    uc.add_argument("--password", required=True, help="or - to read from stdin")
    uc.add_argument("--first", required=True)
    uc.add_argument("--last", required=True)
    uc.set_defaults(fn=cmd_user_create)
    up = user.add_parser("passwd", parents=[common], help="set a user's password")
    up.add_argument("--user", required=True)
    up.add_argument("--password", required=True, help="or - to read from stdin")
    up.set_defaults(fn=cmd_user_passwd)

    acc = sub.add_parser("account", help="broker accounts").add_subparsers(
        dest="cmd", required=True
    )
    aa = acc.add_parser("add", parents=[common], help="add an Angel One account")
    aa.add_argument("--user", required=True)
    aa.add_argument("--label", required=True)
    aa.add_argument("--client-id", required=True)
    aa.add_argument("--api-key", required=True, help="or - to read from stdin")
    aa.add_argument("--pin", required=True, help="or - to read from stdin")
    aa.add_argument("--totp-secret", required=True, help="or - to read from stdin")
    aa.add_argument("--base-url", help="a SmartAPI-compatible server, e.g. the simulator")
    aa.add_argument("--egress-proxy", help="proxy URL orders leave through")
    aa.add_argument("--egress-ip", help="the static IP registered with Angel One")
    aa.add_argument(
        "--source-ip",
        help="local address of this server that orders leave from (not with --egress-proxy)",
    )
    aa.add_argument("--simulated", action="store_true", help="mark as a simulated account")
    aa.set_defaults(fn=cmd_account_add)

    st = sub.add_parser("strategy", help="strategies").add_subparsers(dest="cmd", required=True)
    sc = st.add_parser("create", parents=[common], help="create a strategy")
    sc.add_argument("--user", required=True)
    sc.add_argument("--name", required=True)
    sc.add_argument("--description", default="")
    sc.set_defaults(fn=cmd_strategy_create)

    wh = sub.add_parser("webhook", help="webhook links").add_subparsers(dest="cmd", required=True)
    wc = wh.add_parser("create", parents=[common], help="create a webhook link")
    wc.add_argument("--user", required=True)
    wc.add_argument("--name", required=True)
    wc.add_argument(
        "--account", action="append", help="ACCOUNT_ID or ACCOUNT_ID:LOT_MULTIPLIER (repeatable)"
    )
    wc.add_argument("--strategy", type=int)
    wc.add_argument("--sl", help="stop-loss percent")
    wc.add_argument("--target", help="target percent")
    wc.add_argument("--tsl", help="trailing stop percent")
    wc.add_argument("--paper", action="store_true", help="paper trading (no real orders)")
    wc.add_argument("--queue-outside-hours", action="store_true",
                    help="entries arriving while the market is closed wait for the open")
    wc.set_defaults(fn=cmd_webhook_create)

    b = sub.add_parser("bot", parents=[common], help="start or stop a user's bot")
    b.add_argument("bot_action", choices=["start", "stop"])
    b.add_argument("--user", required=True)
    b.set_defaults(fn=cmd_bot)

    o = sub.add_parser("orders", help="orders").add_subparsers(dest="cmd", required=True)
    oe = o.add_parser("export", parents=[common], help="export a user's orders")
    oe.add_argument("--user", required=True)
    oe.add_argument("--format", choices=orders.EXPORT_FORMATS, default="csv")
    oe.set_defaults(fn=cmd_orders_export)

    sub.add_parser("keygen", parents=[common], help="print a new ATS_SECRET_KEY").set_defaults(
        fn=cmd_keygen
    )

    sim = sub.add_parser("sim", help="run the SmartAPI simulator (see: sim --help)", add_help=False)
    sim.add_argument("sim_args", nargs=argparse.REMAINDER)
    sim.set_defaults(json=False)  # dispatched in main() before parsing

    w = sub.add_parser("worker", parents=[common], help="run an RQ worker")
    w.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    w.add_argument(
        "--queues",
        help="comma-separated queues (default: the trading queues; "
        "run one worker with --queues notifications too)",
    )
    w.set_defaults(fn=cmd_worker)
    sub.add_parser("monitor", parents=[common], help="run the price monitor").set_defaults(
        fn=cmd_monitor
    )
    add_instruments_commands(sub, common)
    add_monitor_commands(sub, common)
    add_notify_commands(sub, common)
    add_risk_commands(sub, common)
    return p


def _print_human(result: dict[str, Any]) -> None:
    for key, value in result.items():
        print(f"{key}: {value}")


def _audit_refusal(args: argparse.Namespace, exc: AtsError) -> None:
    """Refused input is audited too (in its own transaction; the command's rolled back)."""
    from ats_app.engine.store.audit import record_now

    with contextlib.suppress(Exception):
        record_now(
            "cli.refused",
            subject=f"{args.group} {getattr(args, 'cmd', '')}".strip(),
            error=str(exc),
            field=getattr(exc, "field", None),
        )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sim"]:
        # The simulator owns its flags (--port, --account, ...); hand them over untouched.
        from ats_app.simulator.server import main as sim_main

        return sim_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _read_stdin_secrets(args)
        result = args.fn(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except (AtsError, ConfigError) as exc:
        field = getattr(exc, "field", None)
        print(f"error: {exc}" + (f" (field: {field})" if field else ""), file=sys.stderr)
        if isinstance(exc, AtsError):
            _audit_refusal(args, exc)
        return 1
    if result:
        if args.json:
            print(json.dumps(result, default=str))
        else:
            _print_human(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
