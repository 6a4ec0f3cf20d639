"""`positions` CLI commands.

    python -m ats_app.cli positions list --user U [--status OPEN] --json

With `--json`, `positions list` prints a JSON array (one object per position, newest first:
id, link, tradingsymbol, symboltoken, exchange, quantity, entry_price, peak_price, stop_price,
target_price, status, exit_reason, exit_price, ltp, pnl, ...; prices are decimal strings in
rupees; opened_at / closed_at ISO 8601 in IST, +05:30). It prints that
itself and returns {} (as `orders export` does), so an empty list still prints `[]`.
"""

from __future__ import annotations

import argparse
import json
from decimal import Decimal
from typing import Any

from sqlmodel import Session

from ats_app.engine.tenants import users
from ats_app.exports import position_in_ist

__all__ = ["add_commands", "cmd_positions_list"]

STATUSES = ("OPEN", "EXITING", "CLOSED")


def _latest_prices(session: Session, user_id: int) -> dict[str, Decimal]:
    """Feed prices for the unrealized P&L of open positions; none when Redis is away."""
    import redis
    from sqlmodel import col, select

    from ats_app.engine.broker.prices import read_tick
    from ats_app.engine.store.models import Position
    from ats_app.engine.store.redis_conn import connect

    rows = session.exec(
        select(Position.exchange, Position.symbol_token)
        .where(Position.user_id == user_id)
        .where(col(Position.status).in_(("OPEN", "EXITING")))
    ).all()
    out: dict[str, Decimal] = {}
    try:
        r = connect(socket_timeout=2, socket_connect_timeout=2)
        for exchange, token in set(rows):
            q = read_tick(r, exchange, token, max_age=None)
            if q is not None:
                out[f"{exchange}:{token}"] = q.ltp
    except (redis.RedisError, RuntimeError):
        return {}
    return out


def cmd_positions_list(args: argparse.Namespace) -> dict[str, Any]:
    from ats_app.engine.execution.positions import list_positions
    from ats_app.engine.store.db import session_scope

    with session_scope() as s:
        uid = users.resolve(s, args.user)
        rows = list_positions(s, uid, status=args.status, ltp=_latest_prices(s, uid))
    if args.json:
        print(json.dumps([position_in_ist(r) for r in rows], default=str))
        return {}
    if not rows:
        print("no positions")
    for r in rows:
        print(
            f"#{r['id']} {r['status']:<8} {r['tradingsymbol']} x{r['quantity']} "
            f"entry {r['entry_price']} stop {r['stop_price']} target {r['target_price']} "
            f"peak {r['peak_price']} exit {r['exit_price']} ({r['exit_reason']}) "
            f"pnl {r['pnl']}"
        )
    return {}


def add_commands(subparsers: Any, common_parent: argparse.ArgumentParser) -> None:
    """Add `positions list` to the CLI's top-level subparsers."""
    group = subparsers.add_parser("positions", help="positions")
    cmds = group.add_subparsers(dest="cmd", required=True)
    pl = cmds.add_parser("list", parents=[common_parent], help="a user's positions")
    pl.add_argument("--user", required=True, help="username or id")
    pl.add_argument("--status", type=str.upper, choices=STATUSES)
    pl.set_defaults(fn=cmd_positions_list)
