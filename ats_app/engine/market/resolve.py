"""From an alert's choices to one listed contract: strike (ATM / ITM n / OTM n / exact),
expiry (nearest / next / a date), an exact tradingsymbol, and prices rounded to the tick.

Pure, no I/O: every function takes the instrument index (`instruments.InstrumentIndex`) and
the day it resolves for, so live trading, paper trading and tests resolve alike.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from itertools import pairwise
from typing import Literal

from ats_app.engine.core.errors import ValidationError
from ats_app.engine.market.instruments import (
    _OPTION_ALIASES,
    _STEP_RE,
    IST,
    MARKET_CLOSE,
    Direction,
    ExpiryChoice,
    Instrument,
    InstrumentIndex,
    _norm,
    _tidy,
)

# --------------------------------------------------------------------------- choices

# ITM/OTM count listed strikes from the money. Exchanges list a few dozen per side at a time
# (BANKNIFTY 25-1-25 at 100 points), more accrue as the index moves over a contract's life,
# and no chain comes near 500 on one side: at NIFTY's 50-point step that is 25,000 points,
# the whole index. A larger count is a typo or hostile, refused before it reaches a job.
MAX_STRIKE_STEPS = 500
# The highest strikes listed in India (MRF's, SENSEX's) are near 1-1.5 lakh rupees.
MAX_STRIKE_PRICE = Decimal(10_000_000)


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
    digits = m[2].lstrip("0")  # length first: int() of thousands of digits is an error
    if len(digits) > len(str(MAX_STRIKE_STEPS)) or int(digits or 0) > MAX_STRIKE_STEPS:
        raise ValidationError(f"strike must be at most {MAX_STRIKE_STEPS} steps from ATM, "
                              f"got {text[:16]!r}", field="strike")
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
    if strike > MAX_STRIKE_PRICE:
        raise ValidationError(f"strike must be at most {MAX_STRIKE_PRICE}, got "
                              f"{str(value)[:16]!r}", field="strike")
    strike = _tidy(strike)
    if strike <= 0:  # positive, but under Decimal's range (1e-999999999): tidied to 0
        raise ValidationError(f"strike must be positive, got {value!r}", field="strike")
    return StrikeChoice("EXACT", strike=strike)


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


def check_option(index: InstrumentIndex, *, underlying: str, option_type: str,
                 strike: StrikeChoice, expiry: ExpiryChoice, on: date | datetime,
                 needs_spot_row: bool = True) -> None:
    """What can be known of an option alert without the spot: the underlying has options,
    the expiry is listed, an exact strike is in that chain, ATM/ITMn/OTMn has a spot row and
    no more steps than the chain has strikes. Raises what `resolve_option` would (the field
    named); passing proves nothing about the step count against today's ATM."""
    name = index.underlying_name(underlying)
    opt = parse_option_type(option_type)
    ex = _option_exchange(index, name, None)
    day, same_day_live = as_of(on)
    chosen = pick_expiry(index.expiries(ex, name, opt), expiry, day=day,
                         same_day_live=same_day_live, label=f"{name} {opt}")
    strikes = index.strikes(ex, name, opt, chosen)
    label = f"{name} {chosen} {opt}"
    if not strikes:
        raise ValidationError(f"no {label} strikes listed", field="strike")
    if strike.kind == "EXACT" and strike.strike is not None:
        _exact_listed(strikes, strike.strike, label)
        return
    if needs_spot_row and index.spot_instrument(name) is None:
        raise ValidationError(f"no spot price row for {name} in the scrip master",
                              field="underlying")
    if strike.steps >= len(strikes):
        raise ValidationError(f"{strike.kind}{strike.steps} is beyond the {len(strikes)} "
                              f"listed {label} strikes", field="strike")


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
