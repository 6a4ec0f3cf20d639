"""From an alert's signal to one tradable contract, with the instrument index cached per process."""

from __future__ import annotations

import logging
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
from ats_app.engine.market.resolve import check_option, resolve_option, resolve_symbol
from ats_app.engine.market.tickbus import FEED_SPOTS_KEY, server_name

# ATM's spot from the feed (live accounts): older ticks are quoted afresh instead. An index
# rarely moves a strike step (50-100 points) in a few seconds; the feed's 10 s default is too
# lax here. A paper broker prices itself (its own 10 s limit).
SPOT_MAX_AGE_S = 5.0
INDEX_MAX_AGE = 6 * 3600  # the master changes daily; reloading from the disk cache is cheap

log = logging.getLogger("ats.contracts")
_lock = threading.Lock()
_warm_lock = threading.Lock()
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


def cached_index(base_url: str | None) -> InstrumentIndex | None:
    """The index if this process holds a fresh one, else None: never loads (the webhook's
    ack must not wait for a download or a parse of Angel's tens of MB)."""
    cached = _indexes.get(scrip_master.master_url(base_url))
    if cached and time.monotonic() - cached[0] < INDEX_MAX_AGE:
        return cached[1]
    return None


_warming: set[str] = set()
_warm_failed: dict[str, float] = {}  # master URL -> when its last background load failed
WARM_RETRY_S = 60.0  # a master that failed to load is tried again at most this often


def warm_index(base_url: str | None) -> None:
    """Load the index in a background thread (one at a time per master), so that the next
    `cached_index` finds it."""
    key = scrip_master.master_url(base_url)
    with _warm_lock:
        failed = _warm_failed.get(key)
        if key in _warming or (failed and time.monotonic() - failed < WARM_RETRY_S):
            return
        _warming.add(key)

    def load() -> None:
        try:
            index_for(base_url)
        except Exception:  # master unavailable: alerts are resolved in their jobs, as before
            _warm_failed[key] = time.monotonic()
            log.warning("scrip master of %s not loaded for intake checks", key, exc_info=True)
        finally:
            with _warm_lock:
                _warming.discard(key)

    threading.Thread(target=load, name="warm-index", daemon=True).start()


def check_listed(signal: AlertSignal, index: InstrumentIndex, now: datetime) -> None:
    """An entry alert's instrument as far as it can be resolved without a price: raises
    ValidationError naming the alert's field (symbol, tradingsymbol, exchange, option,
    strike, expiry) when the job's `resolve` would surely fail. Pure; microseconds."""
    if not signal.is_entry:
        return  # an exit names no contract: it closes what is open
    try:
        if signal.tradingsymbol and signal.exchange:
            resolve_symbol(index, exchange=signal.exchange, tradingsymbol=signal.tradingsymbol,
                           on=now)
        elif signal.option is None:
            resolve_symbol(index, exchange="NSE", tradingsymbol=f"{signal.symbol}-EQ", on=now)
        else:
            check_option(index, underlying=signal.symbol, option_type=signal.option,
                         strike=signal.strike, expiry=signal.expiry, on=now)
    except ValidationError as exc:
        # The resolver names its own arguments; the alert calls the underlying `symbol`.
        field = exc.field
        if field == "underlying" or (field == "tradingsymbol" and not signal.tradingsymbol):
            field = "symbol"
        raise ValidationError(str(exc), field) from None


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
