"""`webhook create` / `update`: a link TradingView posts to, and what it trades; `webhook
list` / `show`: the links (never their secrets); `webhook message`: the TradingView alert
message(s) to paste for one."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from sqlmodel import Session

from ats_app.cli.common import CliError, with_session
from ats_app.engine.intake import messages
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
        exits_by_signal=args.exits_by_signal,
        broker_stop=args.broker_stop,
    )
    out = asdict(view)
    out["secret"] = secret
    return out


def _given(value: Any, current: Any) -> Any:
    return current if value is None else value


@with_session
def cmd_webhook_update(session: Session, args: argparse.Namespace) -> dict[str, Any]:
    """Change what is given; everything else keeps the link's current setting."""
    uid = users.resolve(session, args.user)
    now = webhooks.get_link(session, uid, args.link)
    view = webhooks.update_link(
        session,
        uid,
        args.link,
        name=_given(args.name, now.name),
        accounts=_parse_link_accounts(args.account) if args.account else list(now.accounts),
        strategy_id=_given(args.strategy, now.strategy_id),
        stop_loss_pct=_given(args.sl, now.stop_loss_pct),
        target_pct=_given(args.target, now.target_pct),
        trailing_stop_pct=_given(args.tsl, now.trailing_stop_pct),
        paper=_given(args.paper, now.paper),
        enabled=_given(args.enabled, now.enabled),
        queue_outside_hours=_given(args.queue_outside_hours, now.queue_outside_hours),
        exits_by_signal=_given(args.exits_by_signal, now.exits_by_signal),
        broker_stop=args.broker_stop,  # None: unchanged
    )
    return asdict(view)


@with_session
def cmd_webhook_list(session: Session, args: argparse.Namespace) -> dict[str, Any]:
    links = webhooks.list_links(session, users.resolve(session, args.user))
    return {"links": [asdict(v) for v in links]}


@with_session
def cmd_webhook_show(session: Session, args: argparse.Namespace) -> dict[str, Any]:
    return asdict(webhooks.get_link(session, users.resolve(session, args.user), args.link))


@with_session
def cmd_webhook_message(session: Session, args: argparse.Namespace) -> dict[str, Any]:
    uid = users.resolve(session, args.user)
    webhooks.get_link(session, uid, args.link)  # NotFound before the secret is revealed
    trade = messages.parse_trade(
        kind=args.kind, underlying=args.underlying, strike=args.strike, expiry=args.expiry,
        symbol=args.symbol, tradingsymbol=args.tradingsymbol, exchange=args.exchange,
        lots=args.lots, send=args.send,
    )
    plan = messages.build(trade, webhooks.reveal_secret(session, uid, args.link))
    out: dict[str, Any] = {
        "messages": [{"name": m.name, "message": m.message} for m in plan.messages]
    }
    if args.pine:
        out["pine"] = plan.pine
    if args.json:
        return out
    # Plain text, ready to copy: a key: value dump would mangle the multi-line messages.
    for m in plan.messages:
        print(f"# {m.name} (paste into {m.where}'s Message box)\n{m.message}\n")
    if args.pine:
        print(f"# Pine Script\n{plan.pine}")
    return {}


BROKER_STOP_HELP = ("Stop at broker: each position's stop-loss also rests in the broker's book "
                    "as a SELL stop-loss order, protecting it while our server is down (needs "
                    "--sl or --tsl)")


def _what_it_trades(p: argparse.ArgumentParser, account_help: str) -> None:
    """The flags `create` and `update` share: accounts, strategy and the exit levels."""
    p.add_argument("--account", action="append", help=account_help)
    p.add_argument("--strategy", type=int)
    p.add_argument("--sl", help="stop-loss percent (0 or off: none)")
    p.add_argument("--target", help="target percent (0 or off: none)")
    p.add_argument("--tsl", help="trailing stop percent (0 or off: none)")


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    wh = sub.add_parser("webhook", help="webhook links").add_subparsers(dest="cmd", required=True)
    wc = wh.add_parser("create", parents=[common], help="create a webhook link")
    wc.add_argument("--user", required=True)
    wc.add_argument("--name", required=True)
    _what_it_trades(wc, "ACCOUNT_ID or ACCOUNT_ID:LOT_MULTIPLIER (repeatable)")
    wc.add_argument("--exits-by-signal", action="store_true",
                    help="the alerts send the exits (needed when every level is off)")
    wc.add_argument("--paper", action="store_true", help="paper trading (no real orders)")
    wc.add_argument("--queue-outside-hours", action="store_true",
                    help="entries arriving while the market is closed wait for the open")
    wc.add_argument("--broker-stop", action="store_true", help=BROKER_STOP_HELP)
    wc.set_defaults(fn=cmd_webhook_create)

    wu = wh.add_parser("update", parents=[common],
                       help="change a webhook link (what is not given stays as it is)")
    wu.add_argument("--user", required=True)
    wu.add_argument("--link", type=int, required=True, help="webhook link id")
    wu.add_argument("--name")
    _what_it_trades(wu, "ACCOUNT_ID or ACCOUNT_ID:LOT_MULTIPLIER (repeatable; replaces the list)")
    flag = argparse.BooleanOptionalAction
    wu.add_argument("--paper", action=flag, default=None, help="paper trading")
    wu.add_argument("--enabled", action=flag, default=None, help="the link takes alerts")
    wu.add_argument("--exits-by-signal", action=flag, default=None,
                    help="the alerts send the exits")
    wu.add_argument("--queue-outside-hours", action=flag, default=None,
                    help="entries arriving while the market is closed wait for the open")
    wu.add_argument("--broker-stop", action=flag, default=None, help=BROKER_STOP_HELP)
    wu.set_defaults(fn=cmd_webhook_update)

    wl = wh.add_parser("list", parents=[common], help="a user's webhook links (no secrets)")
    wl.add_argument("--user", required=True)
    wl.set_defaults(fn=cmd_webhook_list)

    ws = wh.add_parser("show", parents=[common], help="one webhook link (no secret)")
    ws.add_argument("--user", required=True)
    ws.add_argument("--link", type=int, required=True, help="webhook link id")
    ws.set_defaults(fn=cmd_webhook_show)

    wm = wh.add_parser(
        "message", parents=[common], help="the TradingView alert message(s) to paste for a link"
    )
    wm.add_argument("--user", required=True)
    wm.add_argument("--link", type=int, required=True, help="webhook link id")
    wm.add_argument("--kind", choices=messages.KINDS, default="option",
                    help="what the link trades (default: index options)")
    wm.add_argument("--underlying", default="NIFTY", help="option: the underlying")
    wm.add_argument("--strike", default="ATM", help="option: ATM, ITM<n>, OTM<n> or a strike")
    wm.add_argument("--expiry", default="nearest", help="option: nearest, next or YYYY-MM-DD")
    wm.add_argument("--symbol", default="", help="stock: NSE symbol, e.g. RELIANCE")
    wm.add_argument("--tradingsymbol", default="", help="future: e.g. NIFTY29DEC26FUT")
    wm.add_argument("--exchange", default="NFO", help="future: its exchange")
    wm.add_argument("--lots", default="1", help="lots per order (default 1)")
    wm.add_argument("--send", choices=messages.SENDS, default="alertcondition",
                    help="alertcondition: one alert per signal; strategy: one strategy alert")
    wm.add_argument("--pine", action="store_true", help="also print the Pine Script snippet")
    wm.set_defaults(fn=cmd_webhook_message)
