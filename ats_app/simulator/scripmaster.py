"""Angel-format instrument master generated around the simulated spot prices.

Rows follow Angel's ``OpenAPIScripMaster.json``: every value a string, expiry like ``29DEC2026``,
strike in rupees x 100 with six decimals (``-1.000000`` for non-options), tick size in paise.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta

EXCHANGE_TYPES = {"NSE": 1, "NFO": 2, "BSE": 3, "BFO": 4, "MCX": 5, "CDS": 13}


@dataclass(frozen=True)
class Instrument:
    token: str
    symbol: str
    name: str
    exch_seg: str
    lotsize: int
    tick_paise: int
    instrumenttype: str = ""
    expiry: date | None = None
    strike: float = -1.0  # rupees; -1 for anything that is not an option
    option_type: str = ""  # "CE" / "PE" for options
    underlying: str = ""  # token whose price drives this one (options and futures)
    base_price: float = 0.0  # starting price of walk roots (indices, equities)
    vol: float = 0.0  # annualised vol of the walk for roots

    @property
    def exchange_type(self) -> int:
        return EXCHANGE_TYPES.get(self.exch_seg, 1)

    @property
    def expiry_text(self) -> str:
        return self.expiry.strftime("%d%b%Y").upper() if self.expiry else ""

    @property
    def is_option(self) -> bool:
        return self.option_type in ("CE", "PE")

    def row(self) -> dict[str, str]:
        strike = self.strike * 100 if self.strike >= 0 else -1.0
        if self.instrumenttype == "AMXIDX":
            strike = 0.0
        return {
            "token": self.token, "symbol": self.symbol, "name": self.name,
            "expiry": self.expiry_text, "strike": f"{strike:.6f}", "lotsize": str(self.lotsize),
            "instrumenttype": self.instrumenttype, "exch_seg": self.exch_seg,
            "tick_size": f"{self.tick_paise:.6f}",
        }


@dataclass(frozen=True)
class IndexSpec:
    name: str
    spot_token: str
    spot_symbol: str
    spot: float
    step: int
    lotsize: int
    weekly: bool


# Lot sizes and strike steps as published by NSE for 2026; the project must read them from
# the master, which is exactly why they live only here.
INDICES = (
    IndexSpec("NIFTY", "99926000", "Nifty 50", 26000.0, 50, 65, True),
    IndexSpec("BANKNIFTY", "99926009", "Nifty Bank", 59000.0, 100, 30, False),
    IndexSpec("FINNIFTY", "99926037", "Nifty Fin Service", 27500.0, 50, 60, False),
)
# Real Angel NSE cash tokens, so symbols look familiar in logs and demos.
EQUITIES = (
    ("2885", "RELIANCE", 1500.0), ("3045", "SBIN", 950.0), ("1594", "INFY", 1550.0),
    ("11536", "TCS", 3100.0), ("1333", "HDFCBANK", 1000.0), ("4963", "ICICIBANK", 1380.0),
)


def _tuesdays_from(start: date, count: int) -> list[date]:
    # NSE moved all index derivative expiries to Tuesday in September 2025.
    first = start + timedelta(days=(1 - start.weekday()) % 7)
    return [first + timedelta(weeks=i) for i in range(count)]


def _last_tuesday(year: int, month: int) -> date:
    last = date(year, month, calendar.monthrange(year, month)[1])
    return last - timedelta(days=(last.weekday() - 1) % 7)


def monthly_expiries(start: date, count: int) -> list[date]:
    out: list[date] = []
    year, month = start.year, start.month
    while len(out) < count:
        exp = _last_tuesday(year, month)
        if exp >= start:
            out.append(exp)
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return out


def expiries_for(index: IndexSpec, start: date) -> list[date]:
    months = monthly_expiries(start, 3)
    if not index.weekly:
        return months
    return sorted(set(_tuesdays_from(start, 4)) | set(months[:2]))


def build_instruments(start: date, strikes_each_side: int = 20) -> list[Instrument]:
    """Deterministic master for ``start`` (the simulated trading day)."""
    out: list[Instrument] = []
    for tok, name, price in EQUITIES:
        out.append(Instrument(tok, f"{name}-EQ", name, "NSE", 1, 5, base_price=price, vol=0.25))
    next_token = 40001  # synthetic NFO tokens, numbered in a fixed order for reproducibility
    for idx in INDICES:
        out.append(Instrument(idx.spot_token, idx.spot_symbol, idx.name, "NSE", 1, 5, "AMXIDX",
                              base_price=idx.spot, vol=0.14))
        atm = round(idx.spot / idx.step) * idx.step
        monthly = set(monthly_expiries(start, 3))
        for exp in expiries_for(idx, start):
            yy = exp.strftime("%d%b%y").upper()
            if exp in monthly:
                out.append(Instrument(str(next_token), f"{idx.name}{yy}FUT", idx.name, "NFO",
                                      idx.lotsize, 10, "FUTIDX", exp, underlying=idx.spot_token))
                next_token += 1
            for k in range(-strikes_each_side, strikes_each_side + 1):
                strike = atm + k * idx.step
                for opt in ("CE", "PE"):
                    out.append(Instrument(
                        str(next_token), f"{idx.name}{yy}{strike}{opt}", idx.name, "NFO",
                        idx.lotsize, 5, "OPTIDX", exp, float(strike), opt, idx.spot_token))
                    next_token += 1
    return out


class ScripMaster:
    def __init__(self, instruments: list[Instrument]) -> None:
        self.instruments = instruments
        self.by_token = {i.token: i for i in instruments}
        self._by_symbol = {(i.exch_seg, i.symbol.upper()): i for i in instruments}

    def get(self, token: str) -> Instrument | None:
        return self.by_token.get(str(token))

    def find(self, exchange: str, symbol: str) -> Instrument | None:
        return self._by_symbol.get((exchange.upper(), symbol.upper()))

    def search(self, exchange: str, text: str, limit: int = 50) -> list[Instrument]:
        needle = text.upper().strip()
        hits = [i for i in self.instruments
                if i.exch_seg == exchange.upper() and needle and needle in i.symbol.upper()]
        return hits[:limit]

    def rows(self) -> list[dict[str, str]]:
        return [i.row() for i in self.instruments]
