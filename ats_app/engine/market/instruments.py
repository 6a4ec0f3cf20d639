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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Literal

__all__ = [
    "IST",
    "MARKET_CLOSE",
    "Instrument",
    "InstrumentIndex",
    "MasterParse",
    "parse_expiry",
    "parse_master",
    "parse_row",
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
