"""Rupees (Decimal) <-> paise (int), the unit money is stored in."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def to_paise(rupees: Decimal | None) -> int | None:
    if rupees is None:
        return None
    return int((rupees * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def to_rupees(paise: int | None) -> Decimal | None:
    return None if paise is None else Decimal(paise) / 100
