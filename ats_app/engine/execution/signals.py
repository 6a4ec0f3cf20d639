"""The TradingView alert message: parsing and validation (pure, no I/O).

Schema (JSON object; keys case-insensitive; numbers may arrive as strings, as TradingView
placeholders produce them):

| key | required | values |
|---|---|---|
| secret | yes | the webhook link's secret (checked by `alerts`, never stored) |
| action | yes | buy, sell or exit (any case); sell and exit close the link's open position |
| symbol | yes, unless tradingsymbol+exchange | underlying: NIFTY, BANKNIFTY, RELIANCE ("NSE:" ok) |
| option | no | CE or PE (CALL/PUT accepted); absent for cash/equity |
| strike | no (ATM) | ATM, ITM1..ITMn, OTM1..OTMn or a strike price |
| expiry | no (nearest) | nearest, next or a date 2026-11-24 |
| lots | no (1) | whole lots; or |
| quantity | no | units, which must be a multiple of the lot size (checked against the contract) |
| tradingsymbol + exchange | no | an explicit contract, e.g. NIFTY24NOV2626000CE on NFO |
| price | no | the price the signal saw (the slippage reference); positive |
| time | no | ISO 8601 or epoch s/ms; stale (an entry past the age limit) or >60 s ahead → refused |
| id | no | the alert's own id; repeats of one id are duplicates |

Unknown keys are refused (a typo such as "qty" must not silently trade one lot).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ats_app.engine.core.errors import ValidationError
from ats_app.engine.market.instruments import IST, ExpiryChoice
from ats_app.engine.market.resolve import (
    StrikeChoice,
    parse_expiry_choice,
    parse_option_type,
    parse_strike_choice,
)

ACTIONS = ("buy", "sell", "exit")
KNOWN_KEYS = frozenset(
    {
        "secret",
        "action",
        "symbol",
        "option",
        "strike",
        "expiry",
        "lots",
        "quantity",
        "tradingsymbol",
        "exchange",
        "price",
        "time",
        "id",
    }
)
EXCHANGES = ("NSE", "NFO", "BSE", "BFO", "MCX", "CDS")
MAX_ID_LENGTH = 64
MAX_LOTS = 1000
# How far ahead of our clock an alert's time may be: TradingView's clock and an NTP-synced
# server differ by far less, and a time beyond it would also dodge the staleness limit.
MAX_CLOCK_SKEW_SECONDS = 60
# C0, DEL and C1: no symbol, choice or id has one (a NUL in a symbol failed only in the job).
# Surrounding whitespace (a trailing newline) is stripped as before, not refused.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class AlertSignal:
    action: str  # buy / sell / exit
    symbol: str  # underlying ("" when only an explicit tradingsymbol is given)
    option: str | None
    strike: StrikeChoice
    expiry: ExpiryChoice
    lots: int | None
    quantity: int | None
    tradingsymbol: str | None
    exchange: str | None
    price: Decimal | None
    time: datetime | None
    alert_id: str | None

    @property
    def is_entry(self) -> bool:
        return self.action == "buy"


def _duplicate_key(keys: Iterable[str], note: str = "") -> ValidationError:
    """The refusal naming the first key that repeats in `keys` (the caller saw one does)."""
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            break
        seen.add(key)
    # An unpaired surrogate (a \ud800 escape) escaped: the answer and the audit are UTF-8.
    name = key[:MAX_ID_LENGTH].encode("utf-8", "backslashreplace").decode("utf-8")
    return ValidationError(f"duplicate key {name!r}{note}: send each key once", name)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a repeated key at any depth: json keeps the last one silently,
    so {"action": "buy", "action": "sell"} would trade whichever came last."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _duplicate_key(k for k, _ in pairs)
    return obj


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys)  # built once: the ack's hot path
_TOO_DEEP = "body must be a JSON object of plain values, not nested this deeply"


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or ValidationError: field=None for a 400 (not a JSON
    object), or naming a repeated key for a 422."""
    try:
        data = _DECODER.decode(body.decode("utf-8"))
    except ValueError as exc:  # bad UTF-8, bad JSON, an integer of over 4300 digits
        raise ValidationError(
            "body must be a JSON object (TradingView: put JSON in the alert message)"
        ) from exc
    except RecursionError as exc:  # thousands of nested brackets: the parser's depth limit
        raise ValidationError(_TOO_DEEP) from exc
    if not isinstance(data, dict):
        raise ValidationError("body must be a JSON object, not a JSON " + type(data).__name__)
    if b"\\u" in body:  # only a \u escape makes an unpaired surrogate, which no text can hold
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:  # else a 500 wherever it was written or answered
            raise ValidationError("body must be valid text: it holds an unpaired surrogate "
                                  "(\\ud800-\\udfff)") from exc
        except RecursionError as exc:
            raise ValidationError(_TOO_DEEP) from exc
    fields = {str(k).strip().lower(): v for k, v in data.items()}
    if len(fields) != len(data):  # "Secret" and "secret": one key once normalized
        raise _duplicate_key((str(k).strip().lower() for k in data), " (keys ignore case)")
    return fields


def _text(data: dict[str, Any], key: str, *, limit: int = 64) -> str | None:
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValidationError(f"{key} must be text", key)
    text = str(value).strip()
    if len(text) > limit:
        raise ValidationError(f"{key} must be at most {limit} characters", key)
    return text


def _whole(data: dict[str, Any], key: str, upper: int) -> int | None:
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValidationError(f"{key} must be a whole number, got {value!r}", key) from exc
    if (isinstance(value, bool) or not number.is_finite()  # sNaN: no comparison is allowed
            or number != number.to_integral_value() or number <= 0):
        raise ValidationError(f"{key} must be a whole number above 0, got {value!r}", key)
    if number > upper:
        raise ValidationError(f"{key} must be at most {upper}", key)
    return int(number)


def _price(data: dict[str, Any]) -> Decimal | None:
    value = data.get("price")
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        price = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValidationError(f"price must be a number, got {value!r}", "price") from exc
    if not price.is_finite() or price <= 0:
        raise ValidationError(f"price must be above 0, got {value!r}", "price")
    return price


def parse_time(value: object) -> datetime | None:
    """ISO 8601 (TradingView's {{timenow}}: 2026-11-25T04:30:00Z) or epoch seconds / ms."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValidationError(
                f"time must be ISO 8601 or epoch seconds, got {value!r}", "time"
            ) from exc
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    seconds = number / 1000 if number > 1e11 else number  # epoch ms from Pine's timenow
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, ValueError, OSError) as exc:  # nan, inf, 1e30: no such moment
        raise ValidationError(f"time must be a real moment, got {value!r}", "time") from exc


def _symbol(data: dict[str, Any]) -> str:
    raw = _text(data, "symbol") or ""
    # TradingView's {{ticker}} may carry an exchange prefix ("NSE:NIFTY"); drop it.
    return raw.split(":")[-1].strip().upper()


def parse_alert(data: dict[str, Any]) -> AlertSignal:
    """Validate a parsed alert body; ValidationError names the offending field."""
    unknown = sorted(set(data) - KNOWN_KEYS)
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(unknown)}", unknown[0])
    for key, value in data.items():
        if isinstance(value, str) and (bad := _CONTROL.search(value.strip())):
            raise ValidationError(
                f"{key} contains a control character (U+{ord(bad[0]):04X})", key)
    action = (_text(data, "action") or "").lower()
    if action not in ACTIONS:
        raise ValidationError("action is required: buy, sell or exit", "action")
    tradingsymbol = _text(data, "tradingsymbol")
    exchange = (_text(data, "exchange") or "").upper() or None
    if (tradingsymbol is None) != (exchange is None):
        field = "exchange" if tradingsymbol else "tradingsymbol"
        raise ValidationError("tradingsymbol and exchange go together", field)
    if exchange is not None and exchange not in EXCHANGES:
        raise ValidationError(f"exchange must be one of {', '.join(EXCHANGES)}", "exchange")
    symbol = _symbol(data)
    if not symbol and tradingsymbol is None:
        raise ValidationError("symbol is required (e.g. NIFTY)", "symbol")
    option_raw = _text(data, "option")
    option = parse_option_type(option_raw) if option_raw else None
    lots = _whole(data, "lots", MAX_LOTS)
    quantity = _whole(data, "quantity", 10_000_000)
    if lots is not None and quantity is not None:
        raise ValidationError("give lots or quantity (units), not both", "quantity")
    strike_raw = data.get("strike")
    expiry_raw = data.get("expiry")
    return AlertSignal(
        action=action,
        symbol=symbol,
        option=option,
        strike=parse_strike_choice(strike_raw)
        if strike_raw not in (None, "")
        else StrikeChoice("ATM"),
        expiry=parse_expiry_choice(expiry_raw) if expiry_raw not in (None, "") else "nearest",
        lots=lots,
        quantity=quantity,
        tradingsymbol=tradingsymbol.upper() if tradingsymbol else None,
        exchange=exchange,
        price=_price(data),
        time=parse_time(data.get("time")),
        alert_id=_text(data, "id", limit=MAX_ID_LENGTH),
    )


def check_dates(signal: AlertSignal, now: datetime) -> None:
    """Refuse what no alert can rightly carry, whatever its action: a time in the future, an
    expiry already past (IST; its own day still trades)."""
    if signal.time is not None:
        ahead = (signal.time - now).total_seconds()
        if ahead > MAX_CLOCK_SKEW_SECONDS:
            raise ValidationError(
                f"time is {ahead:.0f}s in the future (clock skew allowed: "
                f"{MAX_CLOCK_SKEW_SECONDS}s)", "time")
    if isinstance(signal.expiry, date) and signal.expiry < (today := now.astimezone(IST).date()):
        raise ValidationError(f"expiry {signal.expiry} is past (today is {today})", "expiry")


def check_fresh(signal: AlertSignal, now: datetime, max_age_seconds: int) -> None:
    """A late entry is a wrong entry: refuse alerts older than the limit (0 disables)."""
    if signal.time is None or max_age_seconds <= 0:
        return
    age = (now - signal.time).total_seconds()
    if age > max_age_seconds:
        raise ValidationError(
            f"alert is stale: its time is {age:.0f}s old (limit {max_age_seconds}s)", "time"
        )


def dedup_key(
    data: dict[str, Any], signal: AlertSignal, received: datetime, window_seconds: int
) -> str:
    """Same alert twice → same key (UNIQUE per link in the database).

    With an `id`: the id, forever. Without one: a hash of the normalized body (secret left
    out); with a `time` field the hash alone (the time makes it unique), else the hash plus
    the `window_seconds` bucket the alert arrived in, so an identical body sent again after
    the window is a new signal.
    """
    if signal.alert_id:
        return "id:" + signal.alert_id[:MAX_ID_LENGTH]
    body = {k: v for k, v in data.items() if k != "secret"}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    if signal.time is not None:
        return "h:" + digest
    bucket = int(received.timestamp()) // max(window_seconds, 1)
    return f"hw:{digest}:{bucket}"


def stored_payload(data: dict[str, Any]) -> str:
    """The alert as kept in the database: everything but the secret."""
    return json.dumps({k: v for k, v in data.items() if k != "secret"}, sort_keys=True, default=str)
