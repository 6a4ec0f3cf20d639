"""From an alert's signal to one tradable contract, with the instrument index cached per process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

import redis

from ats_app.engine.broker.base import Contract
from ats_app.engine.core.errors import ValidationError
from ats_app.engine.execution import sizing
from ats_app.engine.execution.signals import AlertSignal
from ats_app.engine.market import scrip_master
from ats_app.engine.market.instruments import Instrument, InstrumentIndex
from ats_app.engine.market.resolve import resolve_option, resolve_symbol
from ats_app.engine.market.tickbus import FEED_SPOTS_KEY, server_name

# ATM's spot from the feed (live accounts): older ticks are quoted afresh instead. An index
# rarely moves a strike step (50-100 points) in a few seconds; the feed's 10 s default is too
# lax here. A paper broker prices itself (its own 10 s limit).
SPOT_MAX_AGE_S = 5.0
INDEX_MAX_AGE = 6 * 3600  # the master changes daily; reloading from the disk cache is cheap

_lock = threading.Lock()
_indexes: dict[str, tuple[float, InstrumentIndex]] = {}


def index_for(base_url: str | None) -> InstrumentIndex:
    """The scrip-master index of Angel's master, or of a SmartAPI-compatible server's."""
    key = scrip_master.master_url(base_url)
    with _lock:
        cached = _indexes.get(key)
        if cached and time.monotonic() - cached[0] < INDEX_MAX_AGE:
            return cached[1]
        index = scrip_master.load_index(base_url=base_url)
        _indexes[key] = (time.monotonic(), index)
        return index


def spot_max_age(r: redis.Redis, base_url: str | None) -> float:
    """How old a feed tick may be to serve as ATM's spot for an account on `base_url`: none
    (0: quote it) unless the feed follows the spots of that very server. The simulator's
    spot rows carry Angel's tokens, and a live order must not pick its strike from them."""
    followed = r.get(FEED_SPOTS_KEY)
    if followed is None:
        return 0.0
    name = followed.decode() if isinstance(followed, bytes) else str(followed)
    return SPOT_MAX_AGE_S if name == server_name(base_url) else 0.0


def to_contract(inst: Instrument) -> Contract:
    tick = inst.tick_size if inst.tick_size > 0 else Decimal("0.05")
    return Contract(
        exchange=inst.exchange,
        tradingsymbol=inst.tradingsymbol,
        symboltoken=inst.token,
        lot_size=inst.lotsize,
        tick_size=tick,
    )


def resolve(
    signal: AlertSignal, index: InstrumentIndex, now: datetime, spot: Callable[[Contract], Decimal]
) -> Contract:
    """The contract an entry alert asks for. `spot` prices the underlying (for ATM)."""
    if signal.tradingsymbol and signal.exchange:
        return to_contract(
            resolve_symbol(
                index, exchange=signal.exchange, tradingsymbol=signal.tradingsymbol, on=now
            )
        )
    if signal.option is None:  # cash equity: the NSE "-EQ" series
        return to_contract(
            resolve_symbol(
                index, exchange="NSE", tradingsymbol=f"{signal.symbol}-EQ", on=now
            )
        )
    spot_price: Decimal | None = None
    if signal.strike.kind != "EXACT":
        spot_row = index.spot_instrument(signal.symbol)
        if spot_row is None:
            raise ValidationError(
                f"no spot price row for {signal.symbol} in the scrip master", "symbol"
            )
        spot_price = spot(to_contract(spot_row))
    strike: object = (
        signal.strike.strike
        if signal.strike.kind == "EXACT"
        else (
            "ATM" if signal.strike.kind == "ATM" else f"{signal.strike.kind}{signal.strike.steps}"
        )
    )
    inst = resolve_option(
        index,
        underlying=signal.symbol,
        option_type=signal.option,
        strike=strike,  # type: ignore[arg-type]
        expiry=signal.expiry,
        spot=spot_price,
        on=now,
    )
    return to_contract(inst)


def order_quantity(signal: AlertSignal, contract: Contract, multiplier: int) -> int:
    """Units to trade: lots x lot size x the account's multiplier (quantity is in units)."""
    lots = signal.lots or 1
    if signal.quantity is not None:
        lots = sizing.lots_from_quantity(signal.quantity, contract.lot_size)
    return sizing.order_quantity(lots, contract.lot_size, multiplier)


def tick_for(base_url: str | None, exchange: str, symbol_token: str) -> Decimal:
    """An instrument's tick size from its server's master; the common 0.05 when the master
    is unavailable or does not list it (as the pipeline falls back)."""
    try:
        inst = index_for(base_url).by_token(exchange, symbol_token)
    except Exception:  # master unavailable
        inst = None
    return to_contract(inst).tick_size if inst else Decimal("0.05")
