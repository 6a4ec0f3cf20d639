"""The TradingView alert messages to paste for a webhook link, and a matching Pine Script
snippet (pure, no I/O).

Every message uses only fields `execution.signals` accepts, and only placeholders whose
filled value that schema accepts as TradingView fills it:

- `{{timenow}}` (ISO UTC, `2026-12-07T09:20:00Z`) → `time`, which also makes a late entry
  stale instead of traded;
- `{{strategy.order.action}}` (`buy` / `sell`) → `action` (a sell closes the position);
- `{{close}}` → `price`, for a stock only: on an index chart it is the index, not the
  option's premium, and would be a false slippage reference.

Left out on purpose: `{{ticker}}` / `{{exchange}}` (the chart's symbol, `NIFTY` on an index
chart, is not the contract traded, and TradingView's tickers are not Angel's), and
`{{strategy.order.contracts}}` (the chart's units, not the option's lots). What the link
trades is written into the message instead, from the builder's choices (`Trade`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from ats_app.engine.core.errors import ValidationError
from ats_app.engine.execution.signals import MAX_LOTS, parse_alert, parse_json_object
from ats_app.engine.market.resolve import parse_expiry_choice, parse_strike_choice

Kind = Literal["option", "stock", "future"]
Send = Literal["alertcondition", "strategy"]
KINDS: tuple[Kind, ...] = ("option", "stock", "future")
SENDS: tuple[Send, ...] = ("alertcondition", "strategy")
FUTURE_EXCHANGES = ("NFO", "BFO", "MCX", "CDS")
# Names go verbatim into JSON and Pine string literals: letters, digits, & _ - only, so no
# quote or backslash can ever break either.
_NAME_RE = re.compile(r"[A-Z0-9][A-Z0-9&_-]{0,39}")
_PLACEHOLDER_RE = re.compile(r"\{\{([a-z_.0-9]+)\}\}")
ALERT_MESSAGE = "{{strategy.order.alert_message}}"


@dataclass(frozen=True)
class Trade:
    """What a link's alerts trade, and how TradingView sends them (the builder's choices)."""

    kind: Kind = "option"
    underlying: str = "NIFTY"  # option: the index (or stock) the option is on
    strike: str = "ATM"  # option: ATM, ITM<n>, OTM<n> or a strike price
    expiry: str = "nearest"  # option: nearest, next or 2026-12-29
    symbol: str = ""  # stock: NSE symbol, e.g. RELIANCE (traded as RELIANCE-EQ)
    tradingsymbol: str = ""  # future: the contract, e.g. NIFTY29DEC26FUT
    exchange: str = "NFO"  # future: its exchange
    lots: int = 1
    send: Send = "alertcondition"


@dataclass(frozen=True)
class AlertMessage:
    name: str  # e.g. "Buy CALL"
    message: str  # the text for the alert's Message box, placeholders unfilled
    where: str  # which TradingView alert it goes in


@dataclass(frozen=True)
class MessagePlan:
    messages: tuple[AlertMessage, ...]
    pine: str
    steps: tuple[str, ...]  # setting it up in TradingView, in order
    # Strategy sends: (order, its alert_message) as written in the Pine, which TradingView
    # puts where the message says {{strategy.order.alert_message}}.
    alert_messages: tuple[tuple[str, str], ...] = ()


def _name(value: object, field: str, example: str) -> str:
    text = str(value or "").strip().upper()
    if not text:
        raise ValidationError(f"{field} is required (e.g. {example})", field)
    if not _NAME_RE.fullmatch(text):
        raise ValidationError(
            f"{field} must be letters, digits, &, _ or - (e.g. {example}), got {value!r}", field
        )
    return text


def _lots(value: object) -> int:
    try:
        lots = int(str(value).strip())
    except ValueError as exc:
        raise ValidationError(f"lots must be a whole number, got {value!r}", "lots") from exc
    if not 1 <= lots <= MAX_LOTS:
        raise ValidationError(f"lots must be between 1 and {MAX_LOTS}, got {lots}", "lots")
    return lots


def _strike_text(value: object) -> str:
    choice = parse_strike_choice(str(value or "ATM"))
    if choice.kind == "EXACT":
        return format(choice.strike.normalize(), "f")  # type: ignore[union-attr]
    return "ATM" if choice.kind == "ATM" else f"{choice.kind}{choice.steps}"


def parse_trade(
    *,
    kind: object = "option",
    underlying: object = "NIFTY",
    strike: object = "ATM",
    expiry: object = "nearest",
    symbol: object = "",
    tradingsymbol: object = "",
    exchange: object = "NFO",
    lots: object = 1,
    send: object = "alertcondition",
) -> Trade:
    """The builder's choices, checked; ValidationError names the field at fault."""
    k = str(kind or "").strip().lower()
    if k not in KINDS:
        raise ValidationError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}", "kind")
    s = str(send or "").strip().lower()
    if s not in SENDS:
        raise ValidationError(f"send must be one of {', '.join(SENDS)}, got {send!r}", "send")
    trade = Trade(kind=k, lots=_lots(lots), send=s)  # type: ignore[arg-type]
    if k == "option":
        expiry_choice = parse_expiry_choice(str(expiry or "nearest"))
        return replace(
            trade,
            underlying=_name(underlying, "underlying", "NIFTY"),
            strike=_strike_text(strike),
            expiry=expiry_choice if isinstance(expiry_choice, str) else expiry_choice.isoformat(),
        )
    if k == "stock":
        return replace(trade, symbol=_name(symbol, "symbol", "RELIANCE"))
    ex = str(exchange or "").strip().upper()
    if ex not in FUTURE_EXCHANGES:
        raise ValidationError(
            f"exchange must be one of {', '.join(FUTURE_EXCHANGES)} for a future, got "
            f"{exchange!r}", "exchange")
    return replace(
        trade, tradingsymbol=_name(tradingsymbol, "tradingsymbol", "NIFTY29DEC26FUT"), exchange=ex
    )


def _instrument(trade: Trade, option: str | None = None) -> dict[str, object]:
    """The message fields naming what is traded (an exit names it too: the schema wants a
    symbol; the exit closes whatever the link holds)."""
    if trade.kind == "option":
        fields: dict[str, object] = {"symbol": trade.underlying}
        if option:
            fields |= {"option": option, "strike": trade.strike, "expiry": trade.expiry}
        return fields
    if trade.kind == "stock":
        return {"symbol": trade.symbol}
    return {"tradingsymbol": trade.tradingsymbol, "exchange": trade.exchange}


def _entry(trade: Trade, action: str, option: str | None) -> dict[str, object]:
    fields = {"action": action, **_instrument(trade, option)}
    if action != "exit":
        fields["lots"] = trade.lots
    return fields


def _message(secret: str, fields: dict[str, object]) -> str:
    return json.dumps({"secret": secret, **fields, "time": "{{timenow}}"}, indent=2)


def _signals(trade: Trade) -> list[tuple[str, str, str | None]]:
    """(name, action, option) per signal: CALL/PUT buys on options, one buy otherwise."""
    if trade.kind == "option":
        return [("Buy CALL", "buy", "CE"), ("Buy PUT", "buy", "PE"), ("Exit", "exit", None)]
    return [("Buy", "buy", None), ("Exit", "exit", None)]


def _label(trade: Trade) -> str:
    if trade.kind == "option":
        return f"{trade.underlying} options, {trade.strike} {trade.expiry}, {trade.lots} lot(s)"
    if trade.kind == "stock":
        return f"{trade.symbol} shares, {trade.lots} lot(s)"
    return f"{trade.tradingsymbol} on {trade.exchange}, {trade.lots} lot(s)"


def _with_price(trade: Trade, fields: dict[str, object]) -> dict[str, object]:
    # Only a stock's chart shows the traded price (see the module docstring).
    if trade.kind == "stock" and fields["action"] == "buy":
        return {**fields, "price": "{{close}}"}
    return fields


def _fragment(fields: dict[str, object]) -> str:
    """JSON members without braces, to sit inside the alert's message."""
    return json.dumps(fields)[1:-1]


def _var(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower() + "_signal"


_SIGNAL_EXAMPLES = {
    "Buy CALL": "ta.crossover(fast, slow)",
    "Buy PUT": "ta.crossunder(fast, slow)",
    "Buy": "ta.crossover(fast, slow)",
    "Exit": "ta.crossunder(fast, slow)",
}


def _pine_header(kind: str, trade: Trade) -> list[str]:
    title = f"ATS {_label(trade)}"
    opener = (
        f'strategy("{title}", overlay=true, pyramiding=0)'
        if kind == "strategy"
        else f'indicator("{title}", overlay=true)'
    )
    return [
        "//@version=6",
        opener,
        # Nothing below differs between the two: a v5 script takes the snippet as it is.
        "// Pine v6; on a v5 script, write //@version=5 in the first line instead.",
        "// Replace the example signals below with your own.",
        "fast = ta.ema(close, 9)",
        "slow = ta.ema(close, 21)",
    ]


def _alertcondition_plan(trade: Trade, secret: str) -> MessagePlan:
    messages, pine = [], _pine_header("indicator", trade)
    signals = _signals(trade)
    for name, _action, _option in signals:
        example = _SIGNAL_EXAMPLES[name]
        if name == "Exit" and trade.kind == "option":
            example = "false  // or leave exits to the link's stop-loss / target"
        pine.append(f"{_var(name)} = {example}")
    for name, action, option in signals:
        fields = _with_price(trade, _entry(trade, action, option))
        messages.append(AlertMessage(name, _message(secret, fields), f'the "{name}" alert'))
        pine.append(f'alertcondition({_var(name)}, title="{name}", message="{name}")')
    steps = (
        "Add the script to your chart (Pine Editor → Add to chart).",
        "For each message below, create an alert: Condition = the script's alert of the same "
        "name, Webhook URL = this link's URL, Message = the message (replace all the text).",
        "One position per link: a buy while one is open is ignored, so exit first.",
    )
    return MessagePlan(tuple(messages), "\n".join(pine) + "\n", steps)


def _strategy_plan(trade: Trade, secret: str) -> MessagePlan:
    pine = _pine_header("strategy", trade)
    if trade.kind != "option":
        # One instrument, long only: TradingView's own buy/sell is the action (sell exits).
        fields = _with_price(trade, _entry(trade, "buy", None))
        fields["action"] = "{{strategy.order.action}}"
        message = AlertMessage("Strategy orders", _message(secret, fields), "the strategy's alert")
        pine += [
            "if ta.crossover(fast, slow)",
            '    strategy.entry("Long", strategy.long)',
            "if ta.crossunder(fast, slow)",
            '    strategy.close("Long")',
        ]
        steps = (
            "Add the strategy to the chart (Pine Editor → Add to chart).",
            "Create one alert: Condition = this strategy (order fills), Webhook URL = the "
            "link's URL, Message = the message below.",
            "Long only: each buy opens the position, each sell closes it (no short selling).",
        )
        return MessagePlan((message,), "\n".join(pine) + "\n", steps)
    # CALL and PUT need different contracts from one strategy: each order carries its own
    # fields in alert_message, and the alert's message wraps them with the secret and time,
    # so the secret never sits in the script's source.
    orders = [
        ("CALL", _fragment(_entry(trade, "buy", "CE"))),
        ("PUT", _fragment(_entry(trade, "buy", "PE"))),
        ("EXIT", _fragment(_entry(trade, "exit", None))),
    ]
    pine += [f"{name.lower()}_fields = '{fragment}'" for name, fragment in orders]
    pine += [
        "if ta.crossover(fast, slow)  // your CALL signal",
        '    strategy.close("PUT", alert_message=exit_fields)',
        '    strategy.entry("CALL", strategy.long, alert_message=call_fields)',
        "if ta.crossunder(fast, slow)  // your PUT signal",
        '    strategy.close("CALL", alert_message=exit_fields)',
        '    strategy.entry("PUT", strategy.short, alert_message=put_fields)',
    ]
    message = "{\n" + f'  "secret": {json.dumps(secret)},\n  "time": "{{{{timenow}}}}",\n'
    message += f"  {ALERT_MESSAGE}\n}}"
    steps = (
        "Add the strategy to the chart (Pine Editor → Add to chart).",
        "Create one alert: Condition = this strategy (order fills), Webhook URL = the link's "
        "URL, Message = the message below: TradingView puts each order's alert_message where "
        f"it says {ALERT_MESSAGE}.",
        "Every strategy.entry / close / exit call needs its alert_message, or that order's "
        "alert is not valid JSON and is refused.",
        "One position per link: the script closes CALL before buying PUT and the reverse; "
        "an entry that arrives while the other is still open is ignored.",
    )
    return MessagePlan(
        (AlertMessage("Strategy orders", message, "the strategy's alert"),),
        "\n".join(pine) + "\n",
        steps,
        tuple(orders),
    )


def build(trade: Trade, secret: str) -> MessagePlan:
    """The messages (and Pine) for a link with this secret; each is checked against the
    webhook schema, filled as TradingView fills it, before it is offered."""
    plan = (_alertcondition_plan if trade.send == "alertcondition" else _strategy_plan)(
        trade, secret
    )
    for body in tradingview_bodies(plan, SAMPLE_VALUES):
        parse_alert(parse_json_object(body))  # a message the webhook would refuse is a bug
    return plan


# What TradingView puts in for each placeholder we use; `{{close}}` is the chart's price.
# A past time: the check is of the schema, not of staleness (`check_fresh`, separate).
SAMPLE_VALUES = {"timenow": "2025-01-06T03:50:00Z", "close": "1500.5"}


def fill(text: str, values: dict[str, str]) -> str:
    """Placeholders replaced as TradingView does: plain text, no quoting; unknown ones stay."""
    return _PLACEHOLDER_RE.sub(lambda m: values.get(m[1], m[0]), text)


def tradingview_bodies(plan: MessagePlan, values: dict[str, str]) -> list[bytes]:
    """Every body TradingView can send from this plan: each message, and for a strategy
    each of its orders (each alert_message, or buy and sell)."""
    bodies = []
    for m in plan.messages:
        if ALERT_MESSAGE in m.message:
            for _order, fragment in plan.alert_messages:
                bodies.append(fill(m.message, {**values, "strategy.order.alert_message": fragment}))
        elif "{{strategy.order.action}}" in m.message:
            for action in ("buy", "sell"):
                bodies.append(fill(m.message, {**values, "strategy.order.action": action}))
        else:
            bodies.append(fill(m.message, values))
    return [b.encode() for b in bodies]


def body_for_test_alert(plan: MessagePlan, now: datetime) -> bytes:
    """The plan's first entry as TradingView would send it now, for "Send test alert".
    `{{close}}` has no value here: the price, a reference only, is left out."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    body = tradingview_bodies(plan, {"timenow": stamp})[0]
    data = json.loads(body)
    if data.get("price") == "{{close}}":
        del data["price"]
    return json.dumps(data).encode()
