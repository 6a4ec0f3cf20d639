"""Angel One instruments: parse the scrip master, index it, resolve an alert to one contract.

Pure: no I/O (downloading and caching live in `scrip_master.py`). Errors are
`ValidationError`s naming the field, so the webhook can answer with them as they are.

Angel's `OpenAPIScripMaster.json` is untidy and this module parses what it actually serves:
every value is a string; `expiry` is `28JUL2026` with varying case (empty for cash and index
rows); `strike` is rupees x 100 with six decimals (`-1.000000` for non-options, `0.000000` on
index spot rows); `tick_size` is paise with six decimals (`5.000000` = Rs 0.05); index spot
rows have instrumenttype `AMXIDX`, a display symbol such as `Nifty 50` and the underlying's
name (`NIFTY`) in `name`; equities have an empty instrumenttype.

Resolution rules (the choices an alert can make, and how each is decided):
- Expiry `nearest` / `next` are the first / second listed expiry of that underlying and option
  type on or after the as-of day. On an expiry day the same-day expiry is still `nearest` while
  it trades: all day when `on` is a date (an operator asking about "that day"), and until
  15:30 IST when `on` is a datetime; `roll_expiry_day=True` skips the same-day expiry all day
  (a policy for users who never want to buy a contract in its last hours).
- Strikes step through the strikes actually listed for that chain, not a hard-coded step:
  far-from-money NIFTY strikes are 100 apart while near ones are 50, and steps change.
- ATM is the listed strike nearest to the spot; an exact tie goes to the higher strike
  (round half up, the usual `round(spot / step) * step` convention).
- ITM for a CE is a lower strike and for a PE a higher one; OTM the other way round.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from itertools import pairwise
from typing import Literal

from ats_app.engine.core.errors import ValidationError

__all__ = [
    "IST",
    "MARKET_CLOSE",
    "Instrument",
    "InstrumentIndex",
    "MasterParse",
    "StrikeChoice",
    "as_of",
    "atm_strike",
    "parse_expiry",
    "parse_expiry_choice",
    "parse_master",
    "parse_option_type",
    "parse_row",
    "parse_strike_choice",
    "pick_expiry",
    "pick_strike",
    "resolve_option",
    "resolve_symbol",
    "round_to_tick",
]

# India has no daylight saving, so a fixed offset is exact and needs no tz database.
IST = timezone(timedelta(hours=5, minutes=30), "IST")
MARKET_CLOSE = time(15, 30)
OPTION_TYPES = ("CE", "PE")
INDEX_SPOT_TYPE = "AMXIDX"
_MONTHS = {m: i for i, m in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}
_EXPIRY_RE = re.compile(r"(\d{1,2})([A-Z]{3})(\d{4})")
_STEP_RE = re.compile(r"(ATM|ITM|OTM)\s*[-+]?\s*(\d*)")
_OPTION_ALIASES = {"CE": "CE", "PE": "PE", "CALL": "CE", "PUT": "PE", "C": "CE", "P": "PE"}
_HUNDRED = Decimal(100)

ExpiryChoice = Literal["nearest", "next"] | date
Direction = Literal["nearest", "up", "down"]


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True, slots=True)
class Instrument:
    """One scrip-master row in rupees and dates."""

    token: str
    tradingsymbol: str
    name: str  # the underlying for derivatives ("NIFTY"), the company for equities
    exchange: str
    instrument_type: str  # OPTIDX, OPTSTK, FUTIDX, AMXIDX, "" for equities, ...
    lotsize: int
    tick_size: Decimal  # rupees; 0 where Angel gives none (index spot rows)
    expiry: date | None = None
    strike: Decimal | None = None  # rupees; options only
    option_type: str | None = None  # "CE" / "PE" for options

    @property
    def is_option(self) -> bool:
        return self.option_type is not None

    @property
    def is_index_spot(self) -> bool:
        return self.instrument_type == INDEX_SPOT_TYPE


@dataclass(frozen=True)
class MasterParse:
    instruments: list[Instrument]
    skipped: int  # rows that could not be parsed (counted, not fatal: the master is huge)


def parse_expiry(text: str) -> date | None:
    """`26DEC2026` / `26Dec2026` / `26dec2026` -> date; empty -> None.

    A month table instead of strptime's %b, which follows the process locale.
    """
    s = text.strip().upper()
    if not s:
        return None
    m = _EXPIRY_RE.fullmatch(s)
    if not m or m[2] not in _MONTHS:
        raise ValueError(f"unrecognised expiry {text!r}")
    return date(int(m[3]), _MONTHS[m[2]], int(m[1]))


def _tidy(value: Decimal) -> Decimal:
    # "2400000.000000" / 100 keeps eight decimal places; drop them without normalize()'s
    # exponent form (2.4E+4), so str() and JSON stay readable.
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def _unscaled(text: str, field: str) -> Decimal:
    """Angel's x100 fields (strike in paise-of-rupees, tick in paise) -> rupees."""
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"{field} is not a number: {text!r}") from exc
    if not value.is_finite():
        raise ValueError(f"{field} is not a number: {text!r}")
    return _tidy(value / _HUNDRED)


def _field(row: Mapping[str, object], key: str) -> str:
    value = row.get(key)
    return "" if value is None else str(value).strip()


def _option_type(instrument_type: str, symbol: str) -> str | None:
    # OPTIDX, OPTSTK, OPTFUT (MCX), OPTCUR (CDS)...: the symbol's suffix says CE or PE.
    suffix = symbol[-2:].upper()
    return suffix if instrument_type.startswith("OPT") and suffix in OPTION_TYPES else None


def _lotsize(text: str) -> int:
    # Seen as "65" and occasionally "65.0"; index spot rows carry "1".
    lots = int(Decimal(text or "1"))
    if lots <= 0:
        raise ValueError(f"lotsize must be positive, got {text!r}")
    return lots


def parse_row(row: Mapping[str, object]) -> Instrument:
    """One master row -> Instrument; ValueError when the row is unusable."""
    token, symbol = _field(row, "token"), _field(row, "symbol")
    exchange = _field(row, "exch_seg").upper()
    if not (token and symbol and exchange):
        raise ValueError("row without token, symbol or exch_seg")
    instrument_type = _field(row, "instrumenttype").upper()
    option = _option_type(instrument_type, symbol)
    expiry = parse_expiry(_field(row, "expiry"))
    strike = _unscaled(_field(row, "strike") or "-1", "strike")
    if option and (strike <= 0 or expiry is None):
        raise ValueError(f"option {symbol} without a strike or expiry")
    tick = _unscaled(_field(row, "tick_size") or "0", "tick_size")
    return Instrument(
        token=token, tradingsymbol=symbol, name=_field(row, "name"), exchange=exchange,
        instrument_type=instrument_type, lotsize=_lotsize(_field(row, "lotsize")),
        tick_size=max(tick, Decimal(0)), expiry=expiry,
        strike=strike if option else None, option_type=option,
    )


def parse_master(rows: Iterable[Mapping[str, object]]) -> MasterParse:
    """Parse every row, skipping (and counting) the few Angel serves malformed."""
    out: list[Instrument] = []
    skipped = 0
    for row in rows:
        try:
            out.append(parse_row(row))
        except (ValueError, TypeError, AttributeError, InvalidOperation):
            skipped += 1
    return MasterParse(out, skipped)


# --------------------------------------------------------------------------- index

_ChainKey = tuple[str, str, str]  # (exchange, UNDERLYING, option type)


def _norm(text: str) -> str:
    return " ".join(text.upper().split())


class InstrumentIndex:
    """Lookups by (exchange, tradingsymbol) and token, and option chains per underlying."""

    def __init__(self, instruments: Iterable[Instrument]) -> None:
        self._by_symbol: dict[tuple[str, str], Instrument] = {}
        self._by_token: dict[tuple[str, str], Instrument] = {}
        self._chains: dict[_ChainKey, dict[date, dict[Decimal, Instrument]]] = {}
        self._spots: dict[str, Instrument] = {}
        self._aliases: dict[str, str] = {}
        self._count = 0
        for inst in instruments:
            self._add(inst)
        self._freeze()

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, object]]) -> InstrumentIndex:
        return cls(parse_master(rows).instruments)

    def _add(self, inst: Instrument) -> None:
        self._count += 1
        # First row wins on a duplicate key, so a later odd row cannot shadow a good one.
        self._by_symbol.setdefault((inst.exchange, _norm(inst.tradingsymbol)), inst)
        self._by_token.setdefault((inst.exchange, inst.token), inst)
        name = _norm(inst.name)
        if inst.is_option and inst.expiry and inst.strike is not None and inst.option_type:
            chain = self._chains.setdefault((inst.exchange, name, inst.option_type), {})
            chain.setdefault(inst.expiry, {}).setdefault(inst.strike, inst)
        elif inst.is_index_spot:
            self._spots.setdefault(name, inst)
            self._aliases.setdefault(_norm(inst.tradingsymbol), name)  # "NIFTY 50" -> NIFTY
        elif inst.exchange == "NSE" and inst.tradingsymbol.upper() == f"{name}-EQ":
            self._spots.setdefault(name, inst)

    def _freeze(self) -> None:
        # Sorted once here so each resolution is a bisect, not a sort of a 100k-row master.
        self._expiries = {k: tuple(sorted(v)) for k, v in self._chains.items()}
        self._strikes = {(k, e): tuple(sorted(s)) for k, v in self._chains.items()
                         for e, s in v.items()}
        for alias, name in list(self._aliases.items()):
            self._aliases.setdefault(alias.replace(" ", ""), name)  # "NIFTY50" too
        underlyings = {name for (_, name, _) in self._chains}
        # An alias must never hide a real underlying of the same spelling.
        self._aliases = {a: n for a, n in self._aliases.items() if a not in underlyings}

    def __len__(self) -> int:
        return self._count

    def by_symbol(self, exchange: str, tradingsymbol: str) -> Instrument | None:
        return self._by_symbol.get((_norm(exchange), _norm(tradingsymbol)))

    def by_token(self, exchange: str, token: str) -> Instrument | None:
        return self._by_token.get((_norm(exchange), str(token).strip()))

    def exchanges_with_symbol(self, tradingsymbol: str) -> list[str]:
        sym = _norm(tradingsymbol)
        return sorted({ex for (ex, s) in self._by_symbol if s == sym})

    def underlying_name(self, text: str) -> str:
        """`nifty`, `NIFTY 50`, `Nifty50` -> `NIFTY` (aliases come from the index spot rows)."""
        name = _norm(text)
        return self._aliases.get(name, name)

    def option_exchanges(self, underlying: str) -> list[str]:
        name = self.underlying_name(underlying)
        return sorted({ex for (ex, n, _) in self._chains if n == name})

    def expiries(self, exchange: str, underlying: str, option_type: str) -> tuple[date, ...]:
        key = (_norm(exchange), self.underlying_name(underlying), option_type)
        return self._expiries.get(key, ())

    def strikes(self, exchange: str, underlying: str, option_type: str,
                expiry: date) -> tuple[Decimal, ...]:
        key = (_norm(exchange), self.underlying_name(underlying), option_type)
        return self._strikes.get((key, expiry), ())

    def option(self, exchange: str, underlying: str, option_type: str, expiry: date,
               strike: Decimal) -> Instrument | None:
        key = (_norm(exchange), self.underlying_name(underlying), option_type)
        return self._chains.get(key, {}).get(expiry, {}).get(strike)

    def spot_instrument(self, underlying: str) -> Instrument | None:
        """The row whose LTP is the underlying's spot: the index row or the NSE equity."""
        return self._spots.get(self.underlying_name(underlying))


# --------------------------------------------------------------------------- choices


@dataclass(frozen=True)
class StrikeChoice:
    kind: Literal["ATM", "ITM", "OTM", "EXACT"]
    steps: int = 0
    strike: Decimal | None = None  # EXACT only


def parse_option_type(text: str) -> str:
    option = _OPTION_ALIASES.get(str(text).strip().upper())
    if option is None:
        raise ValidationError(f"option must be CE or PE, got {text!r}", field="option")
    return option


def _decimal(value: object, field: str) -> Decimal:
    # str() first so a float like 0.1 becomes Decimal("0.1"), not its binary expansion.
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValidationError(f"{field} must be a number, got {value!r}", field=field) from exc
    if not number.is_finite():
        raise ValidationError(f"{field} must be a number, got {value!r}", field=field)
    return number


def parse_strike_choice(value: str | int | float | Decimal) -> StrikeChoice:
    """`ATM`, `ITM2` / `OTM 1` / `otm-3` (steps), or an explicit strike like `24000`."""
    if not isinstance(value, str):
        return _exact_strike(value)
    text = value.strip().upper()
    m = _STEP_RE.fullmatch(text)
    if m is None:
        return _exact_strike(text)
    steps = int(m[2]) if m[2] else (0 if m[1] == "ATM" else 1)
    if m[1] == "ATM" and steps:
        raise ValidationError(f"ATM takes no step count, got {value!r}", field="strike")
    # ITM0 / OTM0 are ATM by definition; treating them so avoids a surprising error.
    return StrikeChoice("ATM") if steps == 0 else StrikeChoice(m[1], steps)  # type: ignore[arg-type]


def _exact_strike(value: object) -> StrikeChoice:
    try:
        strike = _decimal(value, "strike")
    except ValidationError:
        raise ValidationError(
            f"strike must be ATM, ITM<n>, OTM<n> or a strike price, got {value!r}",
            field="strike") from None
    if strike <= 0:
        raise ValidationError(f"strike must be positive, got {value!r}", field="strike")
    return StrikeChoice("EXACT", strike=_tidy(strike))


def parse_expiry_choice(value: str | date) -> ExpiryChoice:
    """`nearest`, `next` or an ISO date (`2026-11-24`)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip().lower()
    if text in ("nearest", "next"):
        return text  # type: ignore[return-value]
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"expiry must be nearest, next or a date like 2026-11-24, got {value!r}",
            field="expiry") from None


def as_of(on: date | datetime, *, roll_expiry_day: bool = False,
          cutoff: time = MARKET_CLOSE) -> tuple[date, bool]:
    """(the IST trading day, whether that day's own expiry still counts as live).

    A date means the whole day, so the same-day expiry counts; a datetime (naive = IST)
    counts it only before `cutoff`, the time the contract stops trading.
    """
    if isinstance(on, datetime):
        local = on.astimezone(IST) if on.tzinfo else on
        return local.date(), not roll_expiry_day and local.time() < cutoff
    return on, not roll_expiry_day


# --------------------------------------------------------------------------- picking


def pick_expiry(expiries: Sequence[date], choice: ExpiryChoice, *, day: date,
                same_day_live: bool, label: str) -> date:
    """Choose from sorted `expiries`; `label` ("NIFTY CE") names the chain in errors."""
    live = [e for e in expiries if e > day or (e == day and same_day_live)]
    if isinstance(choice, date):
        if choice in live:
            return choice
        if choice in expiries:
            raise ValidationError(f"{label} expiry {choice} has already expired "
                                  f"(as of {day})", field="expiry")
        listed = ", ".join(str(e) for e in live[:4]) or "none"
        raise ValidationError(f"no {label} expiry on {choice} (listed: {listed})",
                              field="expiry")
    wanted = 0 if choice == "nearest" else 1
    if len(live) > wanted:
        return live[wanted]
    since = "on or after" if same_day_live else "after"
    what = "expiry" if wanted == 0 else "second expiry"
    raise ValidationError(f"no {label} {what} {since} {day}", field="expiry")


def strike_step(strikes: Sequence[Decimal]) -> Decimal | None:
    """The chain's finest listed spacing (50 for NIFTY near the money), None for one strike."""
    gaps = [b - a for a, b in pairwise(strikes) if b > a]
    return min(gaps) if gaps else None


def atm_strike(strikes: Sequence[Decimal], spot: Decimal) -> Decimal:
    """The listed strike nearest `spot`; a tie goes to the higher strike (round half up)."""
    i = bisect_left(strikes, spot)
    if i == 0:
        return strikes[0]
    if i == len(strikes):
        return strikes[-1]
    below, above = strikes[i - 1], strikes[i]
    return above if above - spot <= spot - below else below


def _check_spot_in_chain(strikes: Sequence[Decimal], spot: Decimal, label: str) -> None:
    # A spot far outside the chain is nearly always the wrong underlying's price (a
    # BANKNIFTY LTP sent for NIFTY); picking the edge strike would trade nonsense.
    step = strike_step(strikes) or Decimal(0)
    if spot < strikes[0] - step or spot > strikes[-1] + step:
        raise ValidationError(
            f"spot {spot} is outside the {label} strikes {strikes[0]}-{strikes[-1]}; "
            f"is it this underlying's price?", field="spot")


def _exact_listed(strikes: Sequence[Decimal], strike: Decimal, label: str) -> Decimal:
    if strike in strikes:
        return strike
    i = bisect_left(strikes, strike)
    near = ", ".join(str(s) for s in strikes[max(i - 1, 0):i + 1])
    raise ValidationError(f"no {label} strike {strike} (nearest listed: {near})",
                          field="strike")


def pick_strike(strikes: Sequence[Decimal], choice: StrikeChoice, *, option_type: str,
                spot: Decimal | None, label: str) -> Decimal:
    """Choose from sorted listed `strikes`; ITM/OTM step through listed strikes from ATM."""
    if not strikes:
        raise ValidationError(f"no {label} strikes listed", field="strike")
    if choice.kind == "EXACT" and choice.strike is not None:
        return _exact_listed(strikes, choice.strike, label)
    if spot is None or spot <= 0:
        raise ValidationError(f"{choice.kind} needs the underlying's spot price (> 0)",
                              field="spot")
    _check_spot_in_chain(strikes, spot, label)
    atm = strikes.index(atm_strike(strikes, spot))
    # ITM is below the spot for a call and above it for a put.
    towards_higher = (choice.kind == "OTM") == (option_type == "CE")
    target = atm + (choice.steps if towards_higher else -choice.steps)
    if not 0 <= target < len(strikes):
        edge = strikes[-1] if towards_higher else strikes[0]
        raise ValidationError(
            f"{choice.kind}{choice.steps} is beyond the listed {label} strikes "
            f"(ATM {strikes[atm]}, last {edge})", field="strike")
    return strikes[target]


# --------------------------------------------------------------------------- resolving


def _option_exchange(index: InstrumentIndex, name: str, exchange: str | None) -> str:
    found = index.option_exchanges(name)
    if exchange:
        ex = _norm(exchange)
        if ex not in found:
            where = f" (listed on {', '.join(found)})" if found else ""
            raise ValidationError(f"no {name} options on {ex}{where}", field="exchange")
        return ex
    if not found:
        raise ValidationError(f"no options on {name!r} in the scrip master",
                              field="underlying")
    if len(found) > 1:
        raise ValidationError(f"{name} options are listed on {', '.join(found)}: "
                              f"give the exchange", field="exchange")
    return found[0]


def resolve_option(
    index: InstrumentIndex,
    *,
    underlying: str,
    option_type: str,
    strike: str | int | float | Decimal,
    expiry: str | date = "nearest",
    spot: str | int | float | Decimal | None = None,
    on: date | datetime,
    exchange: str | None = None,
    roll_expiry_day: bool = False,
) -> Instrument:
    """Underlying + CE/PE + strike choice + expiry choice -> one listed option contract."""
    if not str(underlying).strip():
        raise ValidationError("underlying is required", field="underlying")
    name = index.underlying_name(underlying)
    opt = parse_option_type(option_type)
    strike_choice = parse_strike_choice(strike)
    expiry_choice = parse_expiry_choice(expiry)
    spot_price = None if spot is None else _decimal(spot, "spot")
    ex = _option_exchange(index, name, exchange)
    day, same_day_live = as_of(on, roll_expiry_day=roll_expiry_day)
    chosen_expiry = pick_expiry(index.expiries(ex, name, opt), expiry_choice, day=day,
                                same_day_live=same_day_live, label=f"{name} {opt}")
    chosen_strike = pick_strike(index.strikes(ex, name, opt, chosen_expiry), strike_choice,
                                option_type=opt, spot=spot_price,
                                label=f"{name} {chosen_expiry} {opt}")
    inst = index.option(ex, name, opt, chosen_expiry, chosen_strike)
    assert inst is not None  # the strike came from this very chain
    return inst


def resolve_symbol(index: InstrumentIndex, *, exchange: str, tradingsymbol: str,
                   on: date | datetime | None = None) -> Instrument:
    """Validate an explicit tradingsymbol + exchange from an alert."""
    if not str(exchange).strip():
        raise ValidationError("exchange is required with a tradingsymbol", field="exchange")
    if not str(tradingsymbol).strip():
        raise ValidationError("tradingsymbol is required", field="tradingsymbol")
    inst = index.by_symbol(exchange, tradingsymbol)
    if inst is None:
        elsewhere = index.exchanges_with_symbol(tradingsymbol)
        hint = f" (it is listed on {', '.join(elsewhere)})" if elsewhere else ""
        raise ValidationError(f"no {_norm(exchange)} instrument {tradingsymbol.strip()!r} "
                              f"in the scrip master{hint}", field="tradingsymbol")
    if inst.is_index_spot:
        raise ValidationError(f"{inst.tradingsymbol} is an index, which cannot be traded; "
                              f"give an option or future on it", field="tradingsymbol")
    if on is not None and inst.expiry is not None:
        day, same_day_live = as_of(on)
        if inst.expiry < day or (inst.expiry == day and not same_day_live):
            raise ValidationError(f"{inst.tradingsymbol} expired on {inst.expiry}",
                                  field="tradingsymbol")
    return inst


def round_to_tick(price: str | int | float | Decimal, tick: str | int | float | Decimal,
                  direction: Direction = "nearest") -> Decimal:
    """Round a rupee price onto the tick grid.

    `up` / `down` let the caller round a limit price so it never becomes more aggressive
    than intended (a buy rounds down, a sell up) or, for marketable limits, so it still
    crosses (a buy rounds up). `nearest` rounds half up.
    """
    p, t = _decimal(price, "price"), _decimal(tick, "tick_size")
    if t <= 0:
        raise ValidationError(f"tick size must be positive, got {tick!r}", field="tick_size")
    if p < 0:
        raise ValidationError(f"price must not be negative, got {price!r}", field="price")
    modes = {"nearest": ROUND_HALF_UP, "up": ROUND_CEILING, "down": ROUND_FLOOR}
    if direction not in modes:
        raise ValueError(f"direction must be nearest, up or down, got {direction!r}")
    return _tidy((p / t).to_integral_value(rounding=modes[direction]) * t)
