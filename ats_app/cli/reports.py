"""`report` and `replay` CLI commands (issue 27).

    python -m ats_app.cli report --user U [--link ID | --strategy ID | --account ID]
        [--from D --to D] --json
    python -m ats_app.cli replay [--user U] (--link ID | --trades FILE.csv --symbol TS
        --exchange EX) [--sl 0.2,0.5] [--target 0.3,1] [--tsl 0,0.15] [--account ID] --json

Grid values are percentages, the unit of a link's levels: `--sl 0.5` is a 0.5 % stop-loss
(entry x 0.995), `--target 1` a 1 % target; 0 turns a level off. `replay --json` prints
`{"results": [{"sl", "target", "tsl", "trades", "wins", "gross_pnl", "net_pnl",
"max_drawdown", "exits": [{"entry_time", "entry_price", "exit_time", "exit_price",
"reason"}]}]}`, one result per grid point (sl, then target, then tsl, in the order given),
exits in the order of the trades (oldest first). Notes (skipped rows, download progress) go
to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ats_app.cli.common import CliError

__all__ = ["add_commands", "cmd_replay", "cmd_report"]

GRID_HELP = ("comma list of percentages, e.g. 0.2,0.5 (0.5 means 0.5 %%, the unit of a "
             "link's levels); 0 turns the level off")


def _day(text: str | None, flag: str) -> Any:
    from ats_app.engine.core.clock import parse_day
    from ats_app.engine.core.errors import ValidationError

    if text is None:
        return None
    try:
        return parse_day(text)
    except ValueError as exc:
        raise ValidationError(f"{flag}: {exc}", flag.lstrip("-")) from None


def cmd_report(args: argparse.Namespace) -> dict[str, Any]:
    from ats_app.engine.reports.report import build_report
    from ats_app.engine.store.db import session_scope
    from ats_app.engine.tenants import users

    if sum(x is not None for x in (args.link, args.strategy, args.account)) > 1:
        raise CliError("give at most one of --link, --strategy, --account", 2)
    with session_scope() as s:
        uid = users.resolve(s, args.user)
        out = build_report(s, uid, link_id=args.link, strategy_id=args.strategy,
                           account_id=args.account, start=_day(args.date_from, "--from"),
                           end=_day(args.date_to, "--to"))
    if args.json:
        return out
    for mode in ("paper", "live"):
        m = out[mode]
        print(f"{mode}: {m['trades']} trades, win rate {m['win_rate']} %, avg win "
              f"{m['avg_win']}, avg loss {m['avg_loss']}, profit factor {m['profit_factor']}, "
              f"expectancy {m['expectancy']}, max drawdown {m['max_drawdown']}, charges "
              f"{m['charges']}, net P&L {m['net_pnl']}")
    return {}


def _note(text: str) -> None:
    print(text, file=sys.stderr)


def _levels(args: argparse.Namespace, link: Any) -> tuple[Any, Any, Any]:
    from ats_app.engine.reports.replay import parse_grid

    def given(value: str | None, own: float | None, flag: str) -> Any:
        if value is None:
            value = str(own or 0)  # a link's own level when the flag is left out
        return parse_grid(value, flag)

    return (given(args.sl, link.stop_loss_pct if link else None, "sl"),
            given(args.target, link.target_pct if link else None, "target"),
            given(args.tsl, link.trailing_stop_pct if link else None, "tsl"))


@contextlib.contextmanager
def _redis() -> Iterator[Any]:
    """Redis for the account's session and Angel's rate limits: REDIS_URL, else the running
    system's embedded server, else a throwaway one for this command alone (nothing else
    runs then to share the limits with)."""
    import redis

    from ats_app.engine.core.config import settings
    from ats_app.engine.services import embedded_redis
    from ats_app.engine.store.redis_conn import connect

    url = settings().redis_url
    if not url:
        url_file = settings().data_dir / "redis" / "redis.url"
        if url_file.exists():
            url = url_file.read_text().strip()
            try:
                connect(url, socket_connect_timeout=1).ping()
            except redis.RedisError:
                url = None  # left over from a stopped `make run`
    if url:
        yield connect(url)
        return
    with tempfile.TemporaryDirectory(prefix="ats-replay-redis-") as tmp:
        proc, own = embedded_redis.start(Path(tmp), persist=False)
        try:
            yield connect(own)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def cmd_replay(args: argparse.Namespace) -> dict[str, Any]:
    from ats_app.engine.broker.errors import BrokerError

    with _redis() as conn:
        try:
            return _replay(args, conn)
        except BrokerError as exc:  # the broker's own words, not a traceback
            raise CliError(f"broker: {exc.broker_message or exc}") from None


def _replay(args: argparse.Namespace, conn: Any) -> dict[str, Any]:
    from ats_app.engine.reports import replay
    from ats_app.engine.store.db import session_scope
    from ats_app.engine.tenants import users, webhooks

    if (args.link is None) == (args.trades is None):
        raise CliError("give --link ID or --trades FILE.csv --symbol TS --exchange EX", 2)
    if args.trades is not None and not (args.symbol and args.exchange):
        raise CliError("--trades needs --symbol TS and --exchange EX", 2)
    if args.link is not None and not args.user:
        raise CliError("--link needs --user", 2)
    with session_scope() as s:
        uid = users.resolve(s, args.user) if args.user else None
        if uid is None and args.account is not None:
            raise CliError("--account needs --user", 2)
        link = webhooks.get_link(s, uid, args.link) if args.link is not None else None
        grid = replay.settings_grid(*_levels(args, link))
        if link is not None:
            trades = replay.link_trades(s, uid or 0, link.id)
        else:
            try:
                text = Path(args.trades).read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as exc:
                raise CliError(f"--trades {args.trades}: {exc}") from None
            token = replay.instrument_token(s, uid, args.account, args.symbol, args.exchange)
            trades, skipped = replay.tradingview_trades(text, args.symbol, args.exchange.upper(),
                                                        token)
            if any(skipped.values()):
                _note(f"skipped: {skipped['skipped_short']} short and "
                      f"{skipped['skipped_open']} open trade(s)")
        if uid is not None and args.account is None and link is not None and link.accounts:
            account = link.accounts[0].account_id
        else:
            account = args.account
        broker, source = replay.candle_broker(s, uid, account, conn)
        out = replay.replay_trades(s, broker, source, trades, grid,
                                   lambda _pct, msg: _note(msg))
    if out["candles_missing"]:
        _note(f"{out['candles_missing']} trade(s) had no candles between entry and exit: "
              "they exit on their own signal")
    if args.json:
        print(json.dumps({"results": out["results"]}))
        return {}
    for r in sorted(out["results"], key=lambda r: -r["net_pnl"]):
        print(f"sl {r['sl']:>6} target {r['target']:>6} tsl {r['tsl']:>6}: {r['trades']} "
              f"trades, {r['wins']} wins, gross {r['gross_pnl']:.2f}, net {r['net_pnl']:.2f}, "
              f"max drawdown {r['max_drawdown']:.2f}")
    return {}


def add_commands(subparsers: Any, common_parent: argparse.ArgumentParser) -> None:
    """Add `report` and `replay` to the CLI's top-level subparsers."""
    rp = subparsers.add_parser("report", parents=[common_parent],
                               help="closed trades' figures per link, strategy or account")
    rp.add_argument("--user", required=True, help="username or id")
    rp.add_argument("--link", type=int)
    rp.add_argument("--strategy", type=int)
    rp.add_argument("--account", type=int)
    rp.add_argument("--from", dest="date_from", help="first day (dd-mm-yyyy), IST")
    rp.add_argument("--to", dest="date_to", help="last day (dd-mm-yyyy), IST")
    rp.set_defaults(fn=cmd_report)

    rr = subparsers.add_parser(
        "replay", parents=[common_parent],
        help="what-if: replay trades on 1-minute candles under a grid of SL/target/trail")
    rr.add_argument("--user", help="username or id (required with --link; with --trades, "
                                   "candles are read through this user's first account, "
                                   "else the local simulator)")
    rr.add_argument("--link", type=int, help="replay this link's closed positions")
    rr.add_argument("--trades", help="a TradingView Strategy Tester 'List of trades' CSV")
    rr.add_argument("--symbol", help="tradingsymbol the export traded (with --trades)")
    rr.add_argument("--exchange", help="its exchange, e.g. NSE or NFO (with --trades)")
    rr.add_argument("--account", type=int, help="broker account whose session reads candles")
    rr.add_argument("--sl", help="stop-loss " + GRID_HELP)
    rr.add_argument("--target", help="target " + GRID_HELP)
    rr.add_argument("--tsl", help="trailing stop " + GRID_HELP)
    rr.set_defaults(fn=cmd_replay)
