"""Property tests (Hypothesis) of the alert schema: whatever a webhook body holds, the intake
reads a well-formed signal from it or refuses it with a clear 4xx (422 naming the field) —
never another exception, which would be a 500 for an alert TradingView does not resend.

The bodies go through the intake's own checks (`alerts._authentic_body`, `_valid_signal`:
parse_json_object, the secret, parse_alert, check_dates, check_fresh), which record nothing
until a refusal is settled, and the answer is rendered as the route renders it. No service.
"""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.responses import JSONResponse

from ats_app.engine.core.config import settings as app_settings
from ats_app.engine.core.errors import ValidationError
from ats_app.engine.execution.signals import (
    ACTIONS,
    EXCHANGES,
    KNOWN_KEYS,
    MAX_ID_LENGTH,
    MAX_LOTS,
    AlertSignal,
    dedup_key,
    parse_alert,
    stored_payload,
)
from ats_app.engine.intake import alerts
from ats_app.engine.intake.link_cache import LinkFacts
from ats_app.engine.market.instruments import IST
from ats_app.engine.market.resolve import MAX_STRIKE_PRICE, MAX_STRIKE_STEPS

# The same examples every run (CI reproduces what a developer saw), none stored in the repo.
PROPERTY = settings(
    max_examples=300, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

NOW = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)  # 09:30 IST, a Monday
TODAY_IST = NOW.astimezone(IST).date()
SECRET = "s3cret-Value_1"
LINK = alerts._Link(LinkFacts(id=1, user_id=1, secret=SECRET.encode(), enabled=True,
                              bot_running=True))
CFG = dataclasses.replace(app_settings(), webhook_max_bytes=16 * 1024, webhook_rate_per_min=120,
                          alert_max_age_seconds=60, alert_dedup_window_seconds=300)
CONTROL = {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]}


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    reply: dict[str, Any]
    signal: AlertSignal | None = None
    read: bool = False  # the body was the owner's JSON object: only its fields can be wrong
    keys: frozenset[str] = frozenset()  # the body's keys, as the intake normalized them


def intake(body: bytes) -> Answer:
    """The intake's answer to `body` from an allowed source on a known link, before storing.
    Anything but a refusal propagates."""
    try:
        data = alerts._authentic_body(LINK, body, None, CFG)
    except alerts._Refused as refused:
        return Answer(refused.reply.status_code, refused.reply.body)
    try:
        # The rate count is None (not limited), so the Redis connection is never used.
        signal = alerts._valid_signal(LINK, data, None, None, CFG, NOW)  # type: ignore[arg-type]
    except alerts._Refused as refused:
        return Answer(refused.reply.status_code, refused.reply.body, read=True)
    dedup_key(data, signal, NOW, CFG.alert_dedup_window_seconds)
    stored_payload(data)
    return Answer(202, {"status": "accepted"}, signal, read=True, keys=frozenset(data))


def assert_clear_answer(answer: Answer) -> None:
    """A 202 or a 4xx the route can send (it renders as JSON, so as valid UTF-8); once the
    body is read, a refusal is a 422 naming a field."""
    status, reply = answer.status, answer.reply
    assert status in (202, 400, 401, 422), (status, reply)
    JSONResponse(reply, status_code=status)  # raises where the route would answer a 500
    if status != 202:
        assert isinstance(reply.get("error"), str) and reply["error"], reply
    if answer.read and status != 202:
        # The answer leaves out a field named "" (an unknown key ""): the error still says it.
        assert status == 422 and isinstance(reply.get("field", ""), str), reply
    if status == 422 and not answer.read:
        assert isinstance(reply.get("field"), str) and reply["field"], reply  # a repeated key
    if answer.signal is not None:
        assert answer.keys <= KNOWN_KEYS, answer.keys  # a typo never trades
        assert_well_formed(answer.signal)


def assert_well_formed(signal: AlertSignal) -> None:
    """What a job may rely on in an accepted signal."""
    assert signal.action in ACTIONS
    assert (signal.lots is None or signal.quantity is None)
    for units, upper in ((signal.lots, MAX_LOTS), (signal.quantity, 10_000_000)):
        assert units is None or (type(units) is int and 1 <= units <= upper)
    assert signal.symbol == signal.symbol.strip().upper() and ":" not in signal.symbol
    assert signal.symbol or signal.tradingsymbol
    assert (signal.tradingsymbol is None) == (signal.exchange is None)
    assert signal.exchange is None or signal.exchange in EXCHANGES
    assert signal.option in (None, "CE", "PE")
    strike = signal.strike
    if strike.kind == "EXACT":
        assert strike.strike is not None and 0 < strike.strike <= MAX_STRIKE_PRICE
    else:
        assert strike.strike is None
        low = 0 if strike.kind == "ATM" else 1
        assert low <= strike.steps <= (0 if strike.kind == "ATM" else MAX_STRIKE_STEPS)
    assert signal.expiry in ("nearest", "next") or (
        isinstance(signal.expiry, date) and signal.expiry >= TODAY_IST)
    assert signal.price is None or (signal.price.is_finite() and signal.price > 0)
    assert signal.time is None or signal.time.utcoffset() is not None
    assert signal.alert_id is None or 0 < len(signal.alert_id) <= MAX_ID_LENGTH
    for text in (signal.symbol, signal.tradingsymbol, signal.alert_id):
        assert text is None or not CONTROL & set(text)


# --- Valid alerts, as the schema describes them ---------------------------------------------


def cased(word: str) -> st.SearchStrategy[str]:
    return st.sampled_from([word, word.upper(), word.capitalize(), f" {word}\n"])


def _valid_strike() -> st.SearchStrategy[Any]:
    steps = st.integers(1, MAX_STRIKE_STEPS)
    return st.one_of(
        cased("atm"), st.builds(lambda k, n, sep: f"{k}{sep}{n}", st.sampled_from(["ITM", "otm"]),
                                steps, st.sampled_from(["", " ", "-", "+"])),
        st.integers(1, int(MAX_STRIKE_PRICE)),
        st.decimals(Decimal("0.05"), MAX_STRIKE_PRICE, places=2).map(str),
    )


def _valid_time() -> st.SearchStrategy[Any]:
    # Within the staleness limit (60 s) behind and the clock skew (60 s) ahead, to the second.
    offset = st.integers(-59, 59).map(lambda s: NOW + timedelta(seconds=s))
    return st.one_of(
        offset.map(lambda t: t.isoformat().replace("+00:00", "Z")),
        offset.map(lambda t: int(t.timestamp())),
        offset.map(lambda t: str(int(t.timestamp() * 1000))),
    )


_ID_CHARS = st.characters(exclude_categories=["Cc", "Cs"])


@st.composite
def valid_alerts(draw: st.DrawFn) -> dict[str, Any]:
    """A body the README says is valid, with the schema's freedoms: key case, numbers as
    strings, optional fields present or not."""
    action = draw(st.sampled_from(ACTIONS).flatmap(cased))
    body: dict[str, Any] = {"secret": SECRET, "action": action}
    contract = draw(st.sampled_from(["symbol", "tradingsymbol", "both"]))
    if contract != "tradingsymbol":
        body["symbol"] = draw(st.sampled_from(["NIFTY", "BankNifty", "NSE:RELIANCE", "FINNIFTY"]))
    if contract != "symbol":
        body["tradingsymbol"] = draw(st.from_regex(r"[A-Za-z0-9]{1,30}", fullmatch=True))
        body["exchange"] = draw(st.sampled_from(EXCHANGES).flatmap(cased))
    optional: dict[str, st.SearchStrategy[Any]] = {
        "option": st.sampled_from(["CE", "PE", "call", "Put", "c"]),
        "strike": _valid_strike(),
        "expiry": st.one_of(cased("nearest"), cased("next"), st.dates(
            TODAY_IST, date(2030, 12, 31)).map(date.isoformat)),
        "price": st.one_of(st.decimals(Decimal("0.01"), Decimal(10**6), places=2).map(str),
                           st.floats(0.01, 1e6)),
        "time": _valid_time(),
        "id": st.text(_ID_CHARS, min_size=1, max_size=MAX_ID_LENGTH),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            body[key] = draw(strategy)
    units = draw(st.sampled_from([None, "lots", "quantity"]))
    if units:
        n = draw(st.integers(1, MAX_LOTS if units == "lots" else 10_000_000))
        body[units] = draw(st.sampled_from([n, str(n), float(n), f"{n}.0"]))
    return body


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


# --- Hostile bodies around the schema -------------------------------------------------------

# JSON text json.dumps cannot write, given as raw fragments: huge integers (Python's int
# refuses over 4300 digits), NaN/Infinity literals, escapes of lone surrogates and controls.
RAW_VALUES = [
    "1" * 5000, "-" + "9" * 4301, "1" * 4300, "1e999999999", "-1E-999999999", "NaN", "Infinity",
    "-Infinity", '"\\ud800"', '"\\udfff\\ud800"', '"a\\u0000b"', '"\\u0085"', '"\\u001f "',
    '"\\ud83d\\ude00"', '"NSE:\\u200bNIFTY"', "[]", "{}", "[[[]]]", '{"a": {"a": 1, "a": 2}}',
    "true", "false", "null", "-0", "0.0", "1e-400", '"sNaN"', '"-sNaN123"', '"1_000"',
    '"\\u0661\\u0662"', '"1e999999999"', '"1e-999999999"', '"0x10"', '"OTM500"', '"OTM501"',
    '"ITM 0"', '"ATM1"', '"otm' + "0" * 500 + '1"', '"2026-02-30"', '"0001-01-01"',
    '"9999-12-31T23:59:59-23:59"', '"0001-01-01T00:00:00+23:59"', "-62135596801", "1e11",
    "253402300800", '" "', '""', '"' + "x" * 70 + '"',
]
_CHARS = st.characters() | st.characters(categories=["Cc", "Cs", "Zs", "Nd", "Mn"])
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(10**40), 10**40),
    st.floats(), st.decimals().map(str), st.text(_CHARS, max_size=24),
)
HOSTILE = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.text(_CHARS, max_size=6), inner, max_size=3),
                       max_leaves=8)
# Near misses: what a slip in a Pine script or a placeholder sends, for numbers and text.
NUMBERISH = st.sampled_from([
    "NaN", "-nan", "sNaN", "Infinity", "-Infinity", "inf", "1e999999999", "-1", "0", "-0",
    "0.5", "1.5", "2.0000000001", "1e3", "1E+3", " 7 ", "1001", "10000001", "1_0", "\u0662",
    "", " ", float("nan"), float("inf"), -1, 0, 1.5, True, False, 1, 2, 1000, 1001,
])
WITH_A_CONTROL = st.builds(lambda a, c, b: a + c + b, st.text("NIFTY50", min_size=1, max_size=8),
                           st.characters(categories=["Cc"]), st.text("CEPATM1", max_size=8))
KEYS = sorted(KNOWN_KEYS)
# Checked first, action and the contract last: Hypothesis favours the first of a list.
FIELDS = ["lots", "quantity", "strike", "expiry", "price", "time", "id", "option", "symbol",
          "tradingsymbol", "exchange", "action"]
assert set(FIELDS) == KNOWN_KEYS - {"secret"}
KEY_NAMES = st.one_of(st.sampled_from(KEYS).flatmap(cased), st.text(_CHARS, max_size=8))


def fragment(value: Any, ascii_only: bool) -> str:
    """A value's JSON text, or a raw fragment as it stands."""
    if isinstance(value, _Raw):
        return value.text
    return json.dumps(value, ensure_ascii=ascii_only)


@dataclasses.dataclass(frozen=True)
class _Raw:
    text: str


@st.composite
def hostile_bodies(draw: st.DrawFn) -> bytes:
    """A valid body with one to three fields set to hostile values (or added, repeated,
    re-cased), written as JSON text (raw fragments included) and encoded, sometimes with
    unpaired surrogates as bytes."""
    body = draw(valid_alerts())
    extra: list[tuple[str, Any]] = []
    values = st.one_of(HOSTILE, st.sampled_from(RAW_VALUES).map(_Raw),
                       st.sampled_from(RAW_VALUES).flatmap(lambda raw: _in_a_string(raw)))
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["set", "set", "set", "another key"]))
        if how == "set":  # mostly: a schema field, so that the parse goes on to the others
            body[draw(st.sampled_from(FIELDS))] = draw(values)
        else:  # a key of any spelling, a repeat of one in another case, or unknown
            extra.append((draw(KEY_NAMES), draw(values)))
    pairs = list(body.items())
    for pair in extra:
        pairs.insert(draw(st.integers(0, len(pairs))), pair)
    ascii_only = draw(st.booleans())
    text = "{" + ", ".join(f"{fragment(k, ascii_only)}: {fragment(v, ascii_only)}"
                           for k, v in pairs) + "}"
    return text.encode("utf-8", "surrogatepass")  # a raw surrogate: bytes no text can be


def _in_a_string(raw: str) -> st.SearchStrategy[_Raw]:
    """A raw number as the text TradingView's placeholders send ("1e999999999")."""
    return st.just(_Raw(raw if raw.startswith('"') else json.dumps(raw)))


# --- Properties -----------------------------------------------------------------------------


@PROPERTY
@given(valid_alerts())
def test_a_valid_alert_is_accepted_and_well_formed(body: dict[str, Any]) -> None:
    answer = intake(encode(body))
    assert answer.status == 202, answer.reply
    assert_clear_answer(answer)
    signal = answer.signal
    assert signal is not None
    assert signal.action == body["action"].strip().lower()
    units = body.get("lots", body.get("quantity"))
    assert (signal.lots or signal.quantity) == (None if units is None else int(float(units)))


@PROPERTY
@given(hostile_bodies())
@example(b'{"action": "buy", "symbol": "NIFTY", "lots": ' + b"1" * 5000 + b"}")
@example(b'{"\\ud800": 1, "\\ud800": 2}')
@example(f'{{"secret": "{SECRET}", "action": "buy", "symbol": "NIFTY", '
         '"strike": "1e-999999999"}'.encode())
def test_any_body_is_a_signal_or_a_clear_refusal(body: bytes) -> None:
    assert_clear_answer(intake(body))


@settings(PROPERTY, max_examples=200)
@given(st.one_of(
    st.binary(max_size=300),
    st.builds(lambda body, at, junk: body[:at] + junk + body[at:],
              valid_alerts().map(encode), st.integers(0, 400), st.binary(min_size=1, max_size=8)),
    valid_alerts().map(encode).flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n])),
))
def test_any_bytes_are_a_signal_or_a_clear_refusal(body: bytes) -> None:
    assert_clear_answer(intake(body))


@settings(PROPERTY, max_examples=150)
@given(st.sampled_from(KEYS), st.integers(1, 2200), st.sampled_from(["[", '{"a":', '["x",']))
def test_deep_nesting_in_any_field_is_a_clear_refusal(key: str, depth: int, opener: str) -> None:
    # Up to twice the parser's depth limit (~1000), within the 16 KiB body limit.
    value = opener * depth + "1" + opener[0].replace("[", "]").replace("{", "}") * depth
    body = f'{{"secret": "{SECRET}", "action": "buy", "symbol": "NIFTY", "{key}": {value}}}'
    answer = intake(body.encode())
    assert answer.status in (400, 401, 422), answer.reply  # no field takes a list or an object
    assert_clear_answer(answer)


@PROPERTY
@given(st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(_CHARS, max_size=8)), HOSTILE,
                       max_size=8))
def test_parse_alert_refuses_by_naming_a_field(data: dict[str, Any]) -> None:
    """parse_alert alone, on any JSON-like values (what the intake hands it once the body is
    a JSON object): a signal, or a ValidationError naming a schema key or one it was given."""
    try:
        signal = parse_alert(data)
    except ValidationError as exc:
        assert exc.field in KNOWN_KEYS or exc.field in data, (exc.field, str(exc))
        return
    assert_well_formed(dataclasses.replace(signal, expiry="nearest"))  # no date check here


@pytest.mark.parametrize("field", FIELDS)  # each field its own examples: none left to chance
@settings(PROPERTY, max_examples=60)
@given(valid_alerts(), st.one_of(
    NUMBERISH, WITH_A_CONTROL, HOSTILE, st.sampled_from(RAW_VALUES).map(_Raw),
    st.integers(1, MAX_LOTS), _valid_strike(), _valid_time()))
def test_one_hostile_field_is_a_signal_or_a_clear_refusal(
    field: str, body: dict[str, Any], value: Any
) -> None:
    """A valid body with one field set to a near miss or anything else: each field's own
    checks, with every other field fine."""
    body[field] = value
    pairs = ", ".join(f"{json.dumps(k)}: {fragment(v, True)}" for k, v in body.items())
    assert_clear_answer(intake(("{" + pairs + "}").encode()))


def canonical(signal: AlertSignal) -> dict[str, Any]:
    """The signal written back as a body, in the schema's plainest spelling."""
    strike = signal.strike
    body: dict[str, Any] = {
        "secret": SECRET, "action": signal.action,
        "strike": str(strike.strike) if strike.kind == "EXACT"
        else strike.kind + (str(strike.steps) if strike.steps else ""),
        "expiry": str(signal.expiry),
    }
    optional = {
        "symbol": signal.symbol or None, "option": signal.option, "lots": signal.lots,
        "quantity": signal.quantity, "tradingsymbol": signal.tradingsymbol,
        "exchange": signal.exchange, "price": None if signal.price is None else str(signal.price),
        "time": None if signal.time is None else signal.time.isoformat(), "id": signal.alert_id,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


@PROPERTY
@given(valid_alerts(), st.randoms(use_true_random=False))
def test_a_valid_signal_round_trips_and_its_dedup_key_is_stable(
    body: dict[str, Any], rnd: random.Random
) -> None:
    signal = intake(encode(body)).signal
    assert signal is not None
    # Written back plainly, it reads as the same signal, and again.
    answer = intake(encode(canonical(signal)))
    assert answer.signal == signal, answer.reply
    assert intake(encode(canonical(signal))).signal == signal
    # Keys in another order and case: the same signal, and the same alert for dedup.
    items = list(body.items())
    rnd.shuffle(items)
    shuffled = {rnd.choice([str.upper, str.lower, str.title])(k): v for k, v in items}
    data = alerts._authentic_body(LINK, encode(body), None, CFG)
    data2 = alerts._authentic_body(LINK, encode(shuffled), None, CFG)
    assert parse_alert(data2) == signal
    assert dedup_key(data2, signal, NOW, 300) == dedup_key(data, signal, NOW, 300)


# --- What the properties found (each failed before its fix) ---------------------------------


def test_an_integer_too_long_for_python_is_a_400_not_a_500() -> None:
    # json parses it with int(), which refuses over 4300 digits with a bare ValueError.
    body = f'{{"secret": "{SECRET}", "action": "buy", "symbol": "NIFTY", "lots": {"1" * 4301}}}'
    answer = intake(body.encode())
    assert answer.status == 400, answer.reply


def test_a_repeated_key_that_is_an_unpaired_surrogate_is_answered_as_text() -> None:
    # The refusal names the key, and the route's JSON answer must be able to say it.
    answer = intake(b'{"\\ud800": 1, "\\ud800": 2}')
    assert answer.status == 422, answer.reply
    assert_clear_answer(answer)
    assert answer.reply["field"] == "\\ud800"


def test_an_exact_strike_too_small_for_decimal_is_refused() -> None:
    # Positive as written, but it tidied to a strike of 0.
    body = f'{{"secret": "{SECRET}", "action": "buy", "symbol": "NIFTY", "strike": "1e-999999999"}}'
    answer = intake(body.encode())
    assert (answer.status, answer.reply.get("field")) == (422, "strike"), answer.reply
