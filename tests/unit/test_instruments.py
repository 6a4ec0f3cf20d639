"""Instrument parsing, indexing and resolution on a small real-format Angel scrip master."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from ats_app.engine.core.errors import ValidationError
from ats_app.engine.market.instruments import InstrumentIndex, parse_expiry, parse_master, parse_row
from ats_app.engine.market.resolve import (
    StrikeChoice,
    as_of,
    atm_strike,
    parse_expiry_choice,
    parse_strike_choice,
    resolve_option,
    resolve_symbol,
    round_to_tick,
    strike_step,
)


def opt(token: str, name: str, expiry: str, strike: int | str, kind: str, lot: int,
        itype: str = "OPTIDX", tick: str = "5.000000") -> dict[str, str]:
    """An option row exactly as Angel serves it (symbol uses DDMMMYY, strike x 100)."""
    e = expiry.upper()
    return {"token": token, "symbol": f"{name}{e[:5]}{e[7:]}{strike}{kind}", "name": name,
            "expiry": expiry, "strike": f"{Decimal(str(strike)) * 100:.6f}",
            "lotsize": str(lot), "instrumenttype": itype, "exch_seg": "NFO", "tick_size": tick}


def chain(first_token: int, name: str, expiry: str, strikes: list[int], lot: int,
          itype: str = "OPTIDX") -> list[dict[str, str]]:
    rows = []
    for i, k in enumerate(strikes):
        rows.append(opt(str(first_token + 2 * i), name, expiry, k, "CE", lot, itype))
        rows.append(opt(str(first_token + 2 * i + 1), name, expiry, k, "PE", lot, itype))
    return rows


# NIFTY's nearest chain has 100-point gaps at the edges (23800-23900, 24100-24200) like the
# real far-from-money strikes; steps must walk the listed strikes.
NIFTY_NEAR = [23800, 23900, 23950, 24000, 24050, 24100, 24200]
NIFTY_WEEK = [23900, 23950, 24000, 24050, 24100]

MASTER: list[dict[str, str]] = [
    # Verbatim-style cash and index spot rows: strike -1 / 0, empty expiry and type.
    {"token": "2885", "symbol": "RELIANCE-EQ", "name": "RELIANCE", "expiry": "",
     "strike": "-1.000000", "lotsize": "1", "instrumenttype": "", "exch_seg": "NSE",
     "tick_size": "10.000000"},
    {"token": "3045", "symbol": "SBIN-EQ", "name": "SBIN", "expiry": "", "strike": "-1.000000",
     "lotsize": "1", "instrumenttype": "", "exch_seg": "NSE", "tick_size": "5.000000"},
    {"token": "99926000", "symbol": "Nifty 50", "name": "NIFTY", "expiry": "",
     "strike": "0.000000", "lotsize": "1", "instrumenttype": "AMXIDX", "exch_seg": "NSE",
     "tick_size": "-1.000000"},
    {"token": "99926009", "symbol": "Nifty Bank", "name": "BANKNIFTY", "expiry": "",
     "strike": "0.000000", "lotsize": "1", "instrumenttype": "AMXIDX", "exch_seg": "NSE",
     "tick_size": "-1.000000"},
    {"token": "99926037", "symbol": "Nifty Fin Service", "name": "FINNIFTY", "expiry": "",
     "strike": "0.000000", "lotsize": "1", "instrumenttype": "AMXIDX", "exch_seg": "NSE",
     "tick_size": "-1.000000"},
    {"token": "35001", "symbol": "NIFTY29DEC26FUT", "name": "NIFTY", "expiry": "29DEC2026",
     "strike": "-1.000000", "lotsize": "65", "instrumenttype": "FUTIDX", "exch_seg": "NFO",
     "tick_size": "10.000000"},
    # Expiry case varies across rows of the same underlying.
    *chain(40000, "NIFTY", "24NOV2026", NIFTY_NEAR, 65),
    *chain(41000, "NIFTY", "01Dec2026", NIFTY_WEEK, 65),
    *chain(42000, "NIFTY", "08dec2026", NIFTY_WEEK, 65),
    *chain(43000, "BANKNIFTY", "24NOV2026", [59800, 59900, 60000, 60100, 60200], 30),
    *chain(44000, "BANKNIFTY", "29DEC2026", [59800, 59900, 60000, 60100, 60200], 30),
    *chain(45000, "FINNIFTY", "29DEC2026", [27400, 27450, 27500, 27550, 27600], 60),
    *chain(46000, "RELIANCE", "29DEC2026", [1480, 1500, 1520], 500, "OPTSTK"),
    opt("47000", "SBIN", "29DEC2026", "952.5", "CE", 750, "OPTSTK"),
    # Untidy rows Angel has served: unusable ones are skipped, not fatal.
    {"token": "", "symbol": "BROKEN", "name": "X", "expiry": "", "strike": "-1.000000",
     "lotsize": "1", "instrumenttype": "", "exch_seg": "NSE", "tick_size": "5.000000"},
    {**opt("48000", "NIFTY", "24NOV2026", 30000, "CE", 65), "strike": "n/a"},
    {**opt("48001", "NIFTY", "24NOV2026", 30000, "PE", 65), "expiry": "2026-11-24"},
]
INDEX = InstrumentIndex.from_rows(MASTER)
BEFORE = date(2026, 11, 20)  # the Friday before the 24 Nov 2026 (Tuesday) expiry
EXPIRY_DAY = date(2026, 11, 24)


def nifty(strike: str | int, kind: str = "CE", spot: str | None = "24012.5",
          expiry: str = "nearest", on: date | datetime = BEFORE, **kw: object) -> object:
    return resolve_option(INDEX, underlying="NIFTY", option_type=kind, strike=strike,
                          expiry=expiry, spot=spot, on=on, **kw)  # type: ignore[arg-type]


def error(fn, *args, **kwargs) -> ValidationError:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError) as exc:
        fn(*args, **kwargs)
    return exc.value


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("text", ["24NOV2026", "24Nov2026", "24nov2026", " 24NOV2026 "])
def test_expiry_parses_in_any_case(text: str) -> None:
    assert parse_expiry(text) == date(2026, 11, 24)


@pytest.mark.parametrize("text", ["2026-11-24", "24XYZ2026", "24NOV26"])
def test_unrecognised_expiry_raises(text: str) -> None:
    with pytest.raises(ValueError, match="expiry"):
        parse_expiry(text)


def test_option_row_is_unscaled_to_rupees() -> None:
    inst = parse_row(opt("40006", "NIFTY", "24NOV2026", 24000, "CE", 65))
    assert inst.tradingsymbol == "NIFTY24NOV2624000CE"
    assert inst.strike == Decimal("24000") and str(inst.strike) == "24000"
    assert inst.tick_size == Decimal("0.05")
    assert inst.expiry == date(2026, 11, 24)
    assert (inst.option_type, inst.lotsize, inst.exchange) == ("CE", 65, "NFO")


def test_fractional_stock_strike() -> None:
    inst = INDEX.by_symbol("NFO", "SBIN29DEC26952.5CE")
    assert inst is not None and inst.strike == Decimal("952.5")


def test_equity_row_has_no_strike_or_expiry() -> None:
    inst = INDEX.by_symbol("NSE", "RELIANCE-EQ")
    assert inst is not None
    assert (inst.strike, inst.expiry, inst.option_type) == (None, None, None)
    assert inst.tick_size == Decimal("0.1") and inst.lotsize == 1


def test_index_spot_row() -> None:
    inst = INDEX.by_token("NSE", "99926000")
    assert inst is not None and inst.is_index_spot and not inst.is_option
    assert inst.strike is None and inst.tick_size == 0


def test_future_is_not_an_option() -> None:
    inst = INDEX.by_symbol("NFO", "NIFTY29DEC26FUT")
    assert inst is not None and not inst.is_option and inst.expiry == date(2026, 12, 29)


def test_malformed_rows_are_skipped_and_counted() -> None:
    parsed = parse_master(MASTER)
    assert parsed.skipped == 3
    assert len(parsed.instruments) == len(MASTER) - 3
    assert INDEX.by_token("NFO", "48000") is None


# --------------------------------------------------------------------------- index


def test_lookup_by_symbol_ignores_case() -> None:
    inst = INDEX.by_symbol("nfo", "nifty24nov2624000pe")
    assert inst is not None and inst.token == "40007"


def test_chains_group_rows_whatever_the_expiry_case() -> None:
    assert INDEX.expiries("NFO", "NIFTY", "CE") == (
        date(2026, 11, 24), date(2026, 12, 1), date(2026, 12, 8))
    assert INDEX.strikes("NFO", "NIFTY", "PE", date(2026, 12, 8)) == tuple(
        Decimal(k) for k in NIFTY_WEEK)


@pytest.mark.parametrize("text", ["NIFTY", "nifty", "Nifty 50", "NIFTY50", " nifty  50 "])
def test_underlying_aliases_from_spot_rows(text: str) -> None:
    assert INDEX.underlying_name(text) == "NIFTY"


@pytest.mark.parametrize(("name", "token"), [("NIFTY", "99926000"), ("Nifty Bank", "99926009"),
                                             ("RELIANCE", "2885")])
def test_spot_instrument_for_ltp(name: str, token: str) -> None:
    inst = INDEX.spot_instrument(name)
    assert inst is not None and inst.token == token


# --------------------------------------------------------------------------- choices


@pytest.mark.parametrize(("text", "choice"), [
    ("ATM", StrikeChoice("ATM")), ("atm", StrikeChoice("ATM")),
    ("ITM2", StrikeChoice("ITM", 2)), ("OTM 1", StrikeChoice("OTM", 1)),
    ("otm-3", StrikeChoice("OTM", 3)), ("ITM", StrikeChoice("ITM", 1)),
    ("OTM0", StrikeChoice("ATM")), ("24000", StrikeChoice("EXACT", strike=Decimal(24000))),
    ("24000.0", StrikeChoice("EXACT", strike=Decimal(24000))),
])
def test_parse_strike_choice(text: str, choice: StrikeChoice) -> None:
    assert parse_strike_choice(text) == choice


def test_numeric_strike_choice() -> None:
    assert parse_strike_choice(952.5) == StrikeChoice("EXACT", strike=Decimal("952.5"))


@pytest.mark.parametrize("text", ["ATM2", "deep", "-100", "0", "nan"])
def test_bad_strike_choice(text: str) -> None:
    assert error(parse_strike_choice, text).field == "strike"


def test_parse_expiry_choice() -> None:
    assert parse_expiry_choice("Nearest") == "nearest"
    assert parse_expiry_choice("next") == "next"
    assert parse_expiry_choice("2026-12-08") == date(2026, 12, 8)
    assert error(parse_expiry_choice, "weekly").field == "expiry"


def test_as_of_rules() -> None:
    assert as_of(EXPIRY_DAY) == (EXPIRY_DAY, True)
    assert as_of(datetime(2026, 11, 24, 15, 29)) == (EXPIRY_DAY, True)
    assert as_of(datetime(2026, 11, 24, 15, 30)) == (EXPIRY_DAY, False)
    # 20:00 UTC on the 23rd is 01:30 IST on the 24th.
    assert as_of(datetime(2026, 11, 23, 20, 0, tzinfo=UTC)) == (EXPIRY_DAY, True)
    assert as_of(EXPIRY_DAY, roll_expiry_day=True) == (EXPIRY_DAY, False)


def test_strike_step_and_atm_helpers() -> None:
    strikes = [Decimal(k) for k in NIFTY_NEAR]
    assert strike_step(strikes) == 50
    assert strike_step([Decimal(100)]) is None
    assert atm_strike(strikes, Decimal("23700")) == 23800  # below the chain: the edge


# --------------------------------------------------------------------------- resolution


@pytest.mark.parametrize(("spot", "strike"), [
    ("24012.5", 24000), ("24024.99", 24000), ("24030", 24050),
    ("24025", 24050),  # exact tie: the higher strike
    ("23925", 23950),  # tie between listed 23900 / 23950
    ("23851", 23900),  # the 100-point gap: nearest listed strike, not a multiple of 50
])
def test_atm_is_the_nearest_listed_strike(spot: str, strike: int) -> None:
    for kind in ("CE", "PE"):
        inst = nifty("ATM", kind, spot)
        assert inst.strike == strike and inst.option_type == kind  # type: ignore[attr-defined]


@pytest.mark.parametrize(("kind", "choice", "strike"), [
    ("CE", "ITM1", 23950), ("CE", "ITM2", 23900), ("CE", "ITM3", 23800),
    ("CE", "OTM1", 24050), ("CE", "OTM2", 24100), ("CE", "OTM3", 24200),
    ("PE", "ITM1", 24050), ("PE", "ITM3", 24200),
    ("PE", "OTM1", 23950), ("PE", "OTM2", 23900),
])
def test_itm_otm_steps(kind: str, choice: str, strike: int) -> None:
    inst = nifty(choice, kind)
    assert inst.strike == strike  # type: ignore[attr-defined]
    assert inst.tradingsymbol == f"NIFTY24NOV26{strike}{kind}"  # type: ignore[attr-defined]


def test_step_beyond_the_chain() -> None:
    exc = error(nifty, "OTM4", "CE")
    assert exc.field == "strike" and "OTM4" in str(exc) and "24200" in str(exc)


def test_explicit_strike() -> None:
    assert nifty("24050", "PE", spot=None).token == "40009"  # type: ignore[attr-defined]
    exc = error(nifty, "24010", spot=None)
    assert exc.field == "strike"
    assert str(exc) == "no NIFTY 2026-11-24 CE strike 24010 (nearest listed: 24000, 24050)"


def test_banknifty_atm_uses_its_100_point_step() -> None:
    inst = resolve_option(INDEX, underlying="BANKNIFTY", option_type="PE", strike="ATM",
                          spot="60049", on=BEFORE)
    assert (inst.strike, inst.lotsize, inst.tradingsymbol) == (60000, 30, "BANKNIFTY24NOV2660000PE")
    inst = resolve_option(INDEX, underlying="BANKNIFTY", option_type="CE", strike="OTM1",
                          spot="60050", on=BEFORE)
    assert inst.strike == 60200  # ATM 60100 (tie goes up), one step out


@pytest.mark.parametrize(("underlying", "spot", "lotsize", "symbol"), [
    ("NIFTY", "24012.5", 65, "NIFTY24NOV2624000CE"),
    ("BANKNIFTY", "59990", 30, "BANKNIFTY24NOV2660000CE"),
    ("FINNIFTY", "27480", 60, "FINNIFTY29DEC2627500CE"),
    ("RELIANCE", "1507", 500, "RELIANCE29DEC261500CE"),
])
def test_lot_sizes_come_from_the_master(underlying: str, spot: str, lotsize: int,
                                        symbol: str) -> None:
    inst = resolve_option(INDEX, underlying=underlying, option_type="CE", strike="ATM",
                          spot=spot, on=BEFORE)
    assert (inst.tradingsymbol, inst.lotsize) == (symbol, lotsize)


def test_nearest_and_next_expiry() -> None:
    assert nifty("ATM").expiry == date(2026, 11, 24)  # type: ignore[attr-defined]
    nxt = nifty("ATM", expiry="next")
    assert nxt.expiry == date(2026, 12, 1)  # type: ignore[attr-defined]
    assert nxt.tradingsymbol == "NIFTY01DEC2624000CE"  # type: ignore[attr-defined]


def test_iso_expiry() -> None:
    inst = nifty("ATM", "PE", expiry="2026-12-08")
    assert inst.tradingsymbol == "NIFTY08DEC2624000PE"  # type: ignore[attr-defined]
    exc = error(nifty, "ATM", expiry="2026-12-02")
    assert exc.field == "expiry" and "2026-12-01" in str(exc) and "2026-12-08" in str(exc)


def test_explicit_expired_expiry() -> None:
    exc = error(nifty, "ATM", expiry="2026-11-24", on=date(2026, 11, 25))
    assert "expired" in str(exc)


@pytest.mark.parametrize(("on", "expected"), [
    (EXPIRY_DAY, date(2026, 11, 24)),  # a date: the whole expiry day
    (datetime(2026, 11, 24, 9, 20), date(2026, 11, 24)),
    (datetime(2026, 11, 24, 15, 29, 59), date(2026, 11, 24)),
    (datetime(2026, 11, 24, 15, 30), date(2026, 12, 1)),  # rolled at the close
    (datetime(2026, 11, 24, 10, 5, tzinfo=UTC), date(2026, 12, 1)),  # 15:35 IST
    (date(2026, 11, 25), date(2026, 12, 1)),
])
def test_expiry_day_rollover(on: date | datetime, expected: date) -> None:
    assert nifty("ATM", on=on).expiry == expected  # type: ignore[attr-defined]


def test_expiry_day_next_and_roll_policy() -> None:
    assert nifty("ATM", expiry="next", on=EXPIRY_DAY).expiry == date(2026, 12, 1)  # type: ignore[attr-defined]
    rolled = nifty("ATM", on=datetime(2026, 11, 24, 9, 30), roll_expiry_day=True)
    assert rolled.expiry == date(2026, 12, 1)  # type: ignore[attr-defined]


def test_no_expiry_left() -> None:
    exc = error(nifty, "ATM", on=date(2026, 12, 9))
    assert str(exc) == "no NIFTY CE expiry on or after 2026-12-09" and exc.field == "expiry"
    exc = error(resolve_option, INDEX, underlying="FINNIFTY", option_type="PE", strike="ATM",
                expiry="next", spot="27500", on=BEFORE)
    assert str(exc) == "no FINNIFTY PE second expiry on or after 2026-11-20"
    exc = error(nifty, "ATM", on=datetime(2026, 12, 8, 16, 0))
    assert str(exc) == "no NIFTY CE expiry after 2026-12-08"


def test_missing_or_implausible_spot() -> None:
    assert error(nifty, "ATM", spot=None).field == "spot"
    exc = error(nifty, "ATM", spot="60000")  # BANKNIFTY's price sent for NIFTY
    assert exc.field == "spot" and "23800-24200" in str(exc)
    assert error(nifty, "ATM", spot="abc").field == "spot"


@pytest.mark.parametrize(("kwargs", "field", "text"), [
    ({"underlying": "MIDCPNIFTY"}, "underlying", "MIDCPNIFTY"),
    ({"underlying": " "}, "underlying", "required"),
    ({"option_type": "XX"}, "option", "CE or PE"),
    ({"expiry": "weekly"}, "expiry", "weekly"),
    ({"exchange": "BFO"}, "exchange", "listed on NFO"),
])
def test_bad_requests_name_the_field(kwargs: dict[str, str], field: str, text: str) -> None:
    args: dict[str, object] = {"underlying": "NIFTY", "option_type": "CE", "strike": "ATM",
                               "spot": "24000", "on": BEFORE, **kwargs}
    exc = error(resolve_option, INDEX, **args)
    assert exc.field == field and text in str(exc)


def test_underlying_given_as_spot_name_and_option_as_word() -> None:
    inst = resolve_option(INDEX, underlying="Nifty Bank", option_type="put", strike="ATM",
                          spot="60000", on=BEFORE)
    assert inst.tradingsymbol == "BANKNIFTY24NOV2660000PE"


# --------------------------------------------------------------------------- explicit symbol


def test_explicit_symbol_is_validated_and_found() -> None:
    inst = resolve_symbol(INDEX, exchange="nfo", tradingsymbol="nifty01dec2624050ce",
                          on=BEFORE)
    assert (inst.tradingsymbol, inst.token, inst.lotsize) == ("NIFTY01DEC2624050CE", "41006", 65)
    assert (inst.strike, inst.expiry) == (Decimal(24050), date(2026, 12, 1))
    assert resolve_symbol(INDEX, exchange="NSE", tradingsymbol="SBIN-EQ").token == "3045"


def test_explicit_symbol_errors() -> None:
    exc = error(resolve_symbol, INDEX, exchange="NSE", tradingsymbol="NIFTY24NOV2624000CE")
    assert exc.field == "tradingsymbol" and "listed on NFO" in str(exc)
    exc = error(resolve_symbol, INDEX, exchange="NFO", tradingsymbol="NIFTY24NOV2699999CE")
    assert "no NFO instrument 'NIFTY24NOV2699999CE'" in str(exc)
    assert error(resolve_symbol, INDEX, exchange="", tradingsymbol="X").field == "exchange"
    exc = error(resolve_symbol, INDEX, exchange="NSE", tradingsymbol="Nifty 50")
    assert "index" in str(exc)


def test_explicit_symbol_expired() -> None:
    symbol = "NIFTY24NOV2624000CE"
    assert resolve_symbol(INDEX, exchange="NFO", tradingsymbol=symbol, on=EXPIRY_DAY)
    exc = error(resolve_symbol, INDEX, exchange="NFO", tradingsymbol=symbol,
                on=datetime(2026, 11, 24, 15, 45))
    assert "expired on 2026-11-24" in str(exc)


# --------------------------------------------------------------------------- ticks


@pytest.mark.parametrize(("price", "tick", "direction", "expected"), [
    ("123.456", "0.05", "nearest", "123.45"),
    ("123.475", "0.05", "nearest", "123.5"),  # half up
    ("123.425", "0.05", "nearest", "123.45"),  # half up, not half to even (123.40)
    ("24040", "50", "down", "24000"),
    ("123.456", "0.05", "up", "123.5"),
    ("123.456", "0.05", "down", "123.45"),
    ("123.45", "0.05", "up", "123.45"),  # already on the grid: unchanged
    (101.37, Decimal("0.1"), "nearest", "101.4"),  # float input without binary noise
    ("24013", "50", "down", "24000"),
])
def test_round_to_tick(price: object, tick: object, direction: str, expected: str) -> None:
    assert round_to_tick(price, tick, direction) == Decimal(expected)  # type: ignore[arg-type]


def test_round_to_tick_rejects_bad_input() -> None:
    assert error(round_to_tick, "10", "0").field == "tick_size"
    assert error(round_to_tick, "-1", "0.05").field == "price"
    with pytest.raises(ValueError, match="direction"):
        round_to_tick("10", "0.05", "sideways")  # type: ignore[arg-type]
