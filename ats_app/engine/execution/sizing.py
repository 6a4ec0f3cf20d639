"""Order sizing: lots x lot size x the account's lot multiplier, and quantity checks.

Pure. Errors are `ValidationError`s naming the field, so the webhook can answer 422 with
them as they are. Lot sizes change (NIFTY went 50, 75, 65): always pass the master's value.
"""

from __future__ import annotations

from ats_app.engine.core.errors import ValidationError

__all__ = ["lots_from_quantity", "order_quantity", "validate_quantity"]


def _positive_int(name: str, value: object) -> int:
    # bool is an int subclass; "lots": true must not become one lot.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(f"{name} must be a whole number, got {value!r}", field=name)
    if value <= 0:
        raise ValidationError(f"{name} must be at least 1, got {value}", field=name)
    return value


def _check_max_lots(total_lots: int, max_lots: int | None) -> None:
    if max_lots is None:
        return
    _positive_int("max_lots", max_lots)
    if total_lots > max_lots:
        raise ValidationError(
            f"{total_lots} lots is more than the allowed maximum of {max_lots}", field="lots"
        )


def order_quantity(
    lots: int, lot_size: int, multiplier: int = 1, *, max_lots: int | None = None
) -> int:
    """Units to order: `lots` x `multiplier` lots of `lot_size` each.

    `max_lots` caps the lots actually sent (after the multiplier), a guard against a fat
    finger in an alert or a multiplier typed one digit too long.
    """
    _positive_int("lots", lots)
    _positive_int("lot_size", lot_size)
    _positive_int("multiplier", multiplier)
    total_lots = lots * multiplier
    _check_max_lots(total_lots, max_lots)
    return total_lots * lot_size


def validate_quantity(quantity: int, lot_size: int, *, max_lots: int | None = None) -> None:
    """Raise unless `quantity` (in units) is a positive multiple of `lot_size`."""
    lots_from_quantity(quantity, lot_size, max_lots=max_lots)


def lots_from_quantity(quantity: int, lot_size: int, *, max_lots: int | None = None) -> int:
    """Lots in a quantity given in units; the error says so when units and lots are mixed up."""
    _positive_int("quantity", quantity)
    _positive_int("lot_size", lot_size)
    if quantity % lot_size:
        raise ValidationError(
            f"quantity {quantity} is not a multiple of the lot size {lot_size} "
            f"(quantity is in units; use lots to give a number of lots)",
            field="quantity",
        )
    lots = quantity // lot_size
    _check_max_lots(lots, max_lots)
    return lots
