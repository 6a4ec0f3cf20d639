"""The ready-made TradingView messages (`intake.messages`), filled as TradingView fills them
and read by the webhook's own schema. The trading itself: tests/pipeline/test_message_trades.py."""

from __future__ import annotations

import json
import re

import pytest

from ats_app.engine.core.errors import ValidationError
from ats_app.engine.execution.signals import parse_alert, parse_json_object
from ats_app.engine.intake import messages

SECRET = "s3cr3t-Value_1"
# TradingView's own renderings (its placeholder docs): {{timenow}} ISO UTC to the second.
TV = {"timenow": "2026-12-07T09:20:00Z", "close": "1502.35", "ticker": "NIFTY",
      "exchange": "NSE", "strategy.order.contracts": "1.0"}
ALLOWED = {"timenow", "close", "strategy.order.action", "strategy.order.alert_message"}


def tradingview_fill(text: str, values: dict[str, str]) -> str:
    """As TradingView does it: every {{name}} replaced by its text, nothing else touched."""
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", value)
    assert "{{" not in text, f"a placeholder left unfilled: {text}"
    return text


def pine_alert_messages(pine: str) -> dict[tuple[str, str], str]:
    """(call, order) -> the alert_message it sends, read from the Pine source itself."""
    fields = dict(re.findall(r"^(\w+)_fields = '([^']*)'$", pine, re.M))
    calls = re.findall(r'strategy\.(entry|close)\("(\w+)".*alert_message=(\w+)_fields\)', pine)
    return {(call, order): fields[var] for call, order, var in calls}


def sent_bodies(plan: messages.MessagePlan) -> list[dict]:
    """Every body TradingView can send from the plan, as the webhook parses it."""
    out = []
    for m in plan.messages:
        if "{{strategy.order.alert_message}}" in m.message:
            variants = [{"strategy.order.alert_message": f}
                        for f in pine_alert_messages(plan.pine).values()]
        elif "{{strategy.order.action}}" in m.message:
            variants = [{"strategy.order.action": a} for a in ("buy", "sell")]
        else:
            variants = [{}]
        for extra in variants:
            body = tradingview_fill(m.message, {**TV, **extra}).encode()
            out.append(parse_json_object(body))
    return out


def _plan(**choices: object) -> messages.MessagePlan:
    return messages.build(messages.parse_trade(**choices), SECRET)


def test_index_option_alertconditions_give_one_message_per_signal() -> None:
    plan = _plan(kind="option", underlying="nifty", strike="OTM 2", expiry="next", lots="3")
    assert [m.name for m in plan.messages] == ["Buy CALL", "Buy PUT", "Exit"]
    call, put, exit_ = (parse_alert(d) for d in sent_bodies(plan))
    assert (call.action, call.symbol, call.option, call.lots) == ("buy", "NIFTY", "CE", 3)
    assert (call.strike.kind, call.strike.steps, call.expiry) == ("OTM", 2, "next")
    assert (put.option, put.strike.kind, put.lots) == ("PE", "OTM", 3)
    assert exit_.action == "exit" and exit_.symbol == "NIFTY"
    assert call.time is not None and call.time.isoformat() == "2026-12-07T09:20:00+00:00"
    # The index's close is not the option's premium: no false slippage reference.
    assert call.price is None and call.tradingsymbol is None
    for m in plan.messages:
        assert f'alertcondition({re.sub(" ", "_", m.name.lower())}_signal, title="{m.name}"' in (
            plan.pine)
    assert plan.pine.startswith("//@version=6\nindicator(")
    assert "//@version=5" in plan.pine  # the same snippet serves a v5 script


def test_option_strategy_orders_carry_their_own_fields_in_alert_message() -> None:
    plan = _plan(kind="option", underlying="BANKNIFTY", strike="ITM1", send="strategy")
    (message,) = plan.messages
    assert SECRET in message.message and SECRET not in plan.pine  # never in the script
    sent = pine_alert_messages(plan.pine)
    assert set(sent) == {("entry", "CALL"), ("entry", "PUT"), ("close", "CALL"),
                         ("close", "PUT")}  # every order call carries its alert_message
    assert sent[("close", "CALL")] == sent[("close", "PUT")] == dict(plan.alert_messages)["EXIT"]
    signals = [parse_alert(d) for d in sent_bodies(plan)]
    assert {(s.action, s.symbol, s.option, s.strike.kind, s.strike.steps) for s in signals} == {
        ("buy", "BANKNIFTY", "CE", "ITM", 1), ("buy", "BANKNIFTY", "PE", "ITM", 1),
        ("exit", "BANKNIFTY", None, "ATM", 0)}
    assert "strategy.entry(\"PUT\", strategy.short" in plan.pine


@pytest.mark.parametrize("kind,choices,expect", [
    ("stock", {"symbol": "reliance"}, {"symbol": "RELIANCE", "tradingsymbol": None}),
    ("future", {"tradingsymbol": "nifty29dec26fut", "exchange": "nfo"},
     {"tradingsymbol": "NIFTY29DEC26FUT", "exchange": "NFO"}),
])
@pytest.mark.parametrize("send", ["alertcondition", "strategy"])
def test_stock_and_future_messages(kind: str, choices: dict, expect: dict, send: str) -> None:
    plan = _plan(kind=kind, send=send, lots=2, **choices)
    signals = [parse_alert(d) for d in sent_bodies(plan)]
    assert [s.action for s in signals] == (
        ["buy", "exit"] if send == "alertcondition" else ["buy", "sell"])
    buy = signals[0]
    assert buy.lots == 2 and buy.option is None
    for key, value in expect.items():
        assert getattr(buy, key) == value
    # A stock's chart shows the traded price; a future's chart may be the index: no price.
    assert (buy.price is not None) == (kind == "stock")
    if send == "strategy":
        assert 'strategy.entry("Long", strategy.long)' in plan.pine


@pytest.mark.parametrize("kind", messages.KINDS)
@pytest.mark.parametrize("send", messages.SENDS)
def test_only_placeholders_the_schema_accepts_as_filled(kind: str, send: str) -> None:
    plan = _plan(kind=kind, send=send, symbol="SBIN", tradingsymbol="SBIN29DEC26FUT")
    for m in plan.messages:
        used = set(re.findall(r"\{\{([^}]+)\}\}", m.message))
        assert used <= ALLOWED, used  # never {{ticker}}, {{exchange}}, contracts
        assert json.loads(tradingview_fill(m.message, {
            **TV, "strategy.order.action": "buy",
            "strategy.order.alert_message": '"action": "buy", "symbol": "X"'}))["secret"] == SECRET


@pytest.mark.parametrize("choices,field", [
    ({"kind": "crypto"}, "kind"),
    ({"send": "email"}, "send"),
    ({"strike": "ATMX"}, "strike"),
    ({"expiry": "someday"}, "expiry"),
    ({"lots": "0"}, "lots"),
    ({"lots": "1.5"}, "lots"),
    ({"underlying": 'NIFTY", "lots": 99'}, "underlying"),  # nothing can break the JSON
    ({"kind": "stock", "symbol": ""}, "symbol"),
    ({"kind": "future", "tradingsymbol": "X'Y"}, "tradingsymbol"),
    ({"kind": "future", "tradingsymbol": "NIFTY29DEC26FUT", "exchange": "NSE"}, "exchange"),
])
def test_bad_choices_are_refused_by_name(choices: dict, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        messages.parse_trade(**choices)
    assert err.value.field == field, str(err.value)


def test_the_old_chart_placeholder_message_is_what_the_schema_refuses() -> None:
    """Why {{ticker}}/{{exchange}} are not used: filled on NSE:NIFTY they make a body the
    webhook refuses (exchange without a tradingsymbol) — the bug this module replaces."""
    old = ('{"secret": "s", "action": "buy", "symbol": "{{ticker}}", '
           '"exchange": "{{exchange}}", "quantity": "{{strategy.order.contracts}}"}')
    with pytest.raises(ValidationError, match="tradingsymbol and exchange go together"):
        parse_alert(parse_json_object(tradingview_fill(old, TV).encode()))


def test_the_test_alert_is_the_first_entry_without_an_unknown_price() -> None:
    from datetime import UTC, datetime

    plan = _plan(kind="stock", symbol="INFY")
    body = json.loads(messages.body_for_test_alert(plan, datetime(2026, 12, 7, 4, 0, tzinfo=UTC)))
    assert body == {"secret": SECRET, "action": "buy", "symbol": "INFY", "lots": 1,
                    "time": "2026-12-07T04:00:00Z"}
    plan = _plan(kind="option", send="strategy")
    body = json.loads(messages.body_for_test_alert(plan, datetime(2026, 12, 7, 4, 0, tzinfo=UTC)))
    assert (body["action"], body["option"]) == ("buy", "CE")
