"""TradingView Strategy Tester "List of trades" exports, read into long trades. Pure.

The export has two rows per trade sharing its number, newest trade first and the exit row
before the entry row: `Trade #, Type (Entry long / Exit long), Signal, Date/Time,
Price <CUR>, Contracts, ...`, times in the chart's exchange time (IST for NSE). TradingView
has renamed columns over the years; accepted header variants (case and spacing ignored):

- trade number: `Trade #`, `Trade number`, `Trade no`, `Trade`
- type: `Type`; signal (optional): `Signal`
- time: `Date/Time`, `Date and time`, `Date & time`, `Date time`
- price: `Price`, or `Price` and a currency (`Price INR`, `Price USD`, `Price ₹`)
- quantity (optional, else 1): `Contracts`, `Quantity`, `Qty`, `Size (qty)`,
  `Position size (qty)`
Other columns (profit, run-up, drawdown, ...) are ignored. Comma, semicolon or tab separated.

Short trades are skipped (the product trades long), and so is a trade still open (its exit
row reads "Open"); both are counted. Anything else that does not read as a trade is refused
with an error naming the row (row 1 is the header).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from ats_app.engine.core.clock import IST
from ats_app.engine.core.errors import ValidationError
from ats_app.engine.reports.replay_rules import Trade

__all__ = ["ParsedTrades", "parse_trades"]

MAX_BYTES = 5_000_000
MAX_ROWS = 50_000
FIELD = "trades"

_COLUMNS: dict[str, tuple[str, ...]] = {
    "trade": ("trade #", "trade number", "trade no", "trade no.", "trade"),
    "type": ("type",),
    "signal": ("signal",),
    "time": ("date/time", "date and time", "date & time", "date time"),
    "quantity": ("contracts", "quantity", "qty", "size (qty)", "position size (qty)"),
}
_PRICE = re.compile(r"price(?: \S{1,5})?")
_REQUIRED = ("trade", "type", "time", "price")
_LABEL = {"trade": "Trade #", "type": "Type", "time": "Date/Time", "price": "Price <CUR>"}
_TIME_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M",
                 "%Y-%m-%dT%H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S",
                 "%b %d, %Y, %H:%M", "%b %d, %Y %H:%M", "%d %b %Y %H:%M")
_KINDS = {"entry long": ("entry", "long"), "exit long": ("exit", "long"),
          "entry short": ("entry", "short"), "exit short": ("exit", "short")}


@dataclass(frozen=True)
class ParsedTrades:
    trades: list[Trade]  # oldest first (ascending trade number)
    numbers: list[int]  # each trade's number in the export
    skipped_short: int
    skipped_open: int


def _refuse(row: int, message: str) -> ValidationError:
    return ValidationError(f"TradingView trades, row {row}: {message}", FIELD)


def _norm(name: str) -> str:
    return " ".join(name.replace("\ufeff", "").strip().lower().split())


def _header_map(header: Sequence[str]) -> dict[str, int] | None:
    found: dict[str, int] = {}
    for i, raw in enumerate(header):
        name = _norm(raw)
        key = next((k for k, names in _COLUMNS.items() if name in names), None)
        if key is None and _PRICE.fullmatch(name):
            key = "price"
        if key is None:
            continue
        if key in found:
            raise _refuse(1, f"two {_LABEL.get(key, key)} columns ({header[found[key]]!r} "
                             f"and {raw!r})")
        found[key] = i
    return found if all(k in found for k in _REQUIRED) else None


def _split(text: str) -> tuple[list[list[str]], dict[str, int]]:
    best: tuple[list[list[str]], dict[str, int]] | None = None
    for delimiter in (",", ";", "\t"):
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
        if rows:
            columns = _header_map(rows[0])
            if columns is not None:
                best = (rows, columns)
                break
    if best is None:
        first = text.splitlines()[0] if text.strip() else ""
        raise _refuse(1, "not a TradingView 'List of trades' header (expected Trade #, Type, "
                         f"Signal, Date/Time, Price <CUR>, Contracts, ...), got {first[:120]!r}")
    return best


def _number(text: str, row: int, what: str) -> Decimal:
    cleaned = text.strip().replace("\u2212", "-").replace(",", "").replace(" ", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise _refuse(row, f"{what} {text.strip()!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise _refuse(row, f"{what} must be above 0, got {text.strip()!r}")
    return value


def _time(text: str, row: int) -> datetime:
    t = text.strip()
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(t, fmt).replace(tzinfo=IST)
        except ValueError:
            continue
    raise _refuse(row, f"Date/Time {t!r} is not a date and time like 2026-12-07 09:30 "
                       "(exchange time, IST)")


@dataclass
class _Half:
    row: int
    time: datetime
    price: Decimal
    quantity: int


@dataclass
class _Rows:
    entries: dict[int, _Half]
    exits: dict[int, _Half]
    shorts: set[int]
    still_open: set[int]


def _quantity(cells: list[str], col: dict[str, int], n: int) -> int:
    if "quantity" not in col or not cells[col["quantity"]].strip():
        return 1
    q = _number(cells[col["quantity"]], n, "Contracts")
    if q != q.to_integral_value():
        raise _refuse(n, f"Contracts {cells[col['quantity']].strip()!r} is not a whole number "
                         "of units")
    return int(q)


def _read_row(cells: list[str], col: dict[str, int], n: int, into: _Rows) -> None:
    kind = _KINDS.get(_norm(cells[col["type"]]))
    if kind is None:
        raise _refuse(n, f"Type {cells[col['type']].strip()!r} is not Entry long, Exit long, "
                         "Entry short or Exit short")
    try:
        number = int(cells[col["trade"]].strip())
    except ValueError:
        raise _refuse(n, f"Trade # {cells[col['trade']].strip()!r} is not a whole "
                         "number") from None
    side, direction = kind
    if direction == "short":
        into.shorts.add(number)
        return
    signal = _norm(cells[col["signal"]]) if "signal" in col else ""
    when = cells[col["time"]].strip()
    no_price = not cells[col["price"]].strip()
    if side == "exit" and ("open" in (signal, when.lower()) or no_price):
        into.still_open.add(number)  # TradingView's placeholder exit of a trade still open
        return
    half = _Half(n, _time(when, n), _number(cells[col["price"]], n, "Price"),
                 _quantity(cells, col, n))
    book = into.entries if side == "entry" else into.exits
    if number in book:
        raise _refuse(n, f"trade #{number} has a second {side} row (row {book[number].row})")
    book[number] = half


def _pair(rows: _Rows) -> tuple[list[Trade], list[int]]:
    for number, out in rows.exits.items():
        if number not in rows.entries:
            raise _refuse(out.row, f"trade #{number} has an exit row but no entry row")
    trades: list[Trade] = []
    numbers: list[int] = []
    for number in sorted(rows.entries):
        entry = rows.entries[number]
        out = rows.exits.get(number)
        if out is None:
            rows.still_open.add(number)
            continue
        if out.time < entry.time:
            raise _refuse(out.row, f"trade #{number} exits ({out.time:%Y-%m-%d %H:%M}) before "
                                   f"it enters ({entry.time:%Y-%m-%d %H:%M})")
        trades.append(Trade(entry.time, entry.price, out.time, out.price, entry.quantity))
        numbers.append(number)
    return trades, numbers


def parse_trades(text: str) -> ParsedTrades:
    """Closed long trades of an export, oldest first; ValidationError names a bad row."""
    if len(text) > MAX_BYTES:
        raise ValidationError(f"TradingView trades: the file is over {MAX_BYTES:,} characters",
                              FIELD)
    rows, col = _split(text.lstrip("\ufeff"))
    if len(rows) > MAX_ROWS:
        raise ValidationError(f"TradingView trades: over {MAX_ROWS:,} rows", FIELD)
    found = _Rows({}, {}, set(), set())
    width = max(col.values()) + 1
    for n, cells in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) < width:
            raise _refuse(n, f"{len(cells)} cells, the header has {len(rows[0])}")
        _read_row(cells, col, n, found)
    trades, numbers = _pair(found)
    if not trades:
        raise ValidationError("TradingView trades: no closed long trade in the file", FIELD)
    return ParsedTrades(trades, numbers, len(found.shorts),
                        len(found.still_open - found.shorts))
