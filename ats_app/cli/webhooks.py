"""`webhook create`: a link TradingView posts to, and what it trades."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from sqlmodel import Session

from ats_app.cli.common import CliError, with_session
from ats_app.engine.tenants import users, webhooks


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


@with_session
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


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
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
