"""`bot start|stop` and `orders export`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from typing import Any

from sqlmodel import Session

from ats_app.cli.common import with_session
from ats_app.engine.execution import order_history as orders
from ats_app.engine.risk import bot
from ats_app.engine.tenants import users
from ats_app.exports import orders_in_ist


@with_session
def cmd_bot(session: Session, args: argparse.Namespace) -> dict[str, Any]:
    uid = users.resolve(session, args.user)
    running = bot.set_running(session, uid, args.bot_action == "start")
    return {"user_id": uid, "running": running}


@with_session
def cmd_orders_export(session: Session, args: argparse.Namespace) -> dict[str, Any]:
    rows = list(orders_in_ist(orders.list_orders(session, users.resolve(session, args.user))))
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


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    b = sub.add_parser("bot", parents=[common], help="start or stop a user's bot")
    b.add_argument("bot_action", choices=["start", "stop"])
    b.add_argument("--user", required=True)
    b.set_defaults(fn=cmd_bot)

    o = sub.add_parser("orders", help="orders").add_subparsers(dest="cmd", required=True)
    oe = o.add_parser("export", parents=[common], help="export a user's orders")
    oe.add_argument("--user", required=True)
    oe.add_argument("--format", choices=orders.EXPORT_FORMATS, default="csv")
    oe.set_defaults(fn=cmd_orders_export)
