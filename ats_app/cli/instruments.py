"""`instruments` CLI commands: operators debug what an alert resolves to.

    python -m ats_app.cli instruments resolve --master FILE --underlying NIFTY --option CE \\
        --strike ATM --expiry nearest --spot 24012.5 --on 2026-11-24 --json

"""

from __future__ import annotations

import argparse
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ats_app.engine.core.errors import ValidationError
from ats_app.engine.market.instruments import IST, Instrument, InstrumentIndex
from ats_app.engine.market.resolve import resolve_option, resolve_symbol

__all__ = ["add_commands", "cmd_instruments_resolve", "instrument_view"]

_OPTION_FLAGS = ("underlying", "option", "strike", "expiry", "spot")


def _as_of(text: str | None) -> date | datetime:
    """`--on`: a date (the whole trading day) or an ISO datetime (IST unless it has an offset)."""
    if not text:
        return datetime.now(IST)
    try:
        if "T" in text or " " in text.strip():
            return datetime.fromisoformat(text.strip())
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(
            f"--on must be a date like 2026-11-24 or a datetime like "
            f"2026-11-24T15:31, got {text!r}",
            field="on",
        ) from None


def _number(value: Decimal | None) -> int | float | None:
    # JSON numbers for operators and scripts; whole strikes print as 24000, not 24000.0.
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def instrument_view(inst: Instrument) -> dict[str, Any]:
    """The fields an order needs, in rupees and ISO dates."""
    return {
        "tradingsymbol": inst.tradingsymbol,
        "symboltoken": inst.token,
        "exchange": inst.exchange,
        "expiry": inst.expiry.isoformat() if inst.expiry else None,
        "strike": _number(inst.strike),
        "lotsize": inst.lotsize,
        "tick_size": _number(inst.tick_size),
    }


def _index(args: argparse.Namespace) -> InstrumentIndex:
    from ats_app.engine.market.scrip_master import load_index

    if args.master:
        return load_index(master=Path(args.master))
    return load_index(base_url=args.base_url)


def _check_mode(args: argparse.Namespace) -> None:
    given = [f"--{f}" for f in _OPTION_FLAGS if getattr(args, f) is not None]
    if args.tradingsymbol:
        if given:
            raise ValidationError(
                f"give either --tradingsymbol/--exchange or the option "
                f"choice, not both ({', '.join(given)} given)"
            )
        if not args.exchange:
            raise ValidationError("--tradingsymbol needs --exchange", field="exchange")
        return
    missing = [f"--{f}" for f in ("underlying", "option", "strike") if getattr(args, f) is None]
    if missing:
        raise ValidationError(
            f"missing {', '.join(missing)} (or give --tradingsymbol and --exchange)"
        )


def cmd_instruments_resolve(args: argparse.Namespace) -> dict[str, Any]:
    _check_mode(args)
    on = _as_of(args.on)
    index = _index(args)
    if args.tradingsymbol:
        inst = resolve_symbol(
            index, exchange=args.exchange, tradingsymbol=args.tradingsymbol, on=on
        )
    else:
        inst = resolve_option(
            index,
            underlying=args.underlying,
            option_type=args.option,
            strike=args.strike,
            expiry=args.expiry or "nearest",
            spot=args.spot,
            on=on,
            exchange=args.exchange,
            roll_expiry_day=args.roll_expiry_day,
        )
    return instrument_view(inst)


def add_commands(subparsers: Any, common_parent: argparse.ArgumentParser) -> None:
    """Add the `instruments` group (with `resolve`) to the CLI's top-level subparsers."""
    group = subparsers.add_parser("instruments", help="scrip master and contract resolution")
    cmds = group.add_subparsers(dest="cmd", required=True)
    r = cmds.add_parser(
        "resolve",
        parents=[common_parent],
        help="resolve an alert's instrument choice to one tradable contract",
        description="Either --underlying/--option/--strike[/--expiry/--spot] or "
        "--tradingsymbol with --exchange.",
    )
    src = r.add_argument_group("scrip master")
    src.add_argument(
        "--master",
        metavar="FILE",
        help="an OpenAPIScripMaster.json file (default: the cached daily download)",
    )
    src.add_argument("--base-url", help="download from this SmartAPI-compatible server")
    opt = r.add_argument_group("option choice")
    opt.add_argument("--underlying", help="NIFTY, BANKNIFTY, FINNIFTY or a stock")
    opt.add_argument("--option", help="CE or PE")
    opt.add_argument("--strike", help="ATM, ITM<n>, OTM<n> or a strike price in rupees")
    opt.add_argument("--expiry", help="nearest (default), next or a date like 2026-11-24")
    opt.add_argument("--spot", type=str, help="the underlying's price (for ATM/ITM/OTM)")
    opt.add_argument(
        "--roll-expiry-day",
        action="store_true",
        help="on an expiry day, skip the expiring contract all day",
    )
    sym = r.add_argument_group("explicit contract")
    sym.add_argument("--tradingsymbol", help="e.g. NIFTY24NOV2624000CE (needs --exchange)")
    sym.add_argument(
        "--exchange",
        help="e.g. NFO; with an option choice only needed when "
        "the underlying has options on two exchanges",
    )
    r.add_argument("--on", help="as-of date (whole day) or IST datetime; default: now")
    r.set_defaults(fn=cmd_instruments_resolve)
