"""Notification events and their messages: pure functions, no I/O.

Callers pass what they have (money as `*_paise` integers, as the tables store it, or as rupees);
each event renders to a short title (the phone's notification line) and a plain-text body.
Messages carry no timestamps on purpose: identical failures must render identically so the
rate limit in `notify.emit` can recognise them, and every channel stamps its own time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any


class Event(StrEnum):
    ORDER_FILLED = "order_filled"
    ORDER_REJECTED = "order_rejected"
    POSITION_CLOSED = "position_closed"
    BROKER_LOGIN_FAILED = "broker_login_failed"
    FEED_STALE = "feed_stale"
    FEED_RECONNECTED = "feed_reconnected"
    ALERT_REFUSED = "alert_refused"
    ACCOUNT_NOT_TRADED = "account_not_traded"
    BOT_STARTED = "bot_started"
    BOT_STOPPED = "bot_stopped"
    KILL_SWITCH = "kill_switch"
    DAILY_SUMMARY = "daily_summary"
    BROKER_STOP_LOST = "broker_stop_lost"


# Failures that can repeat in bursts (a flapping feed, a wrong PIN retried by every job):
# identical ones are sent at most once per rate-limit window.
RATE_LIMITED_EVENTS = frozenset(
    {
        Event.ORDER_REJECTED,
        Event.BROKER_LOGIN_FAILED,
        Event.FEED_STALE,
        Event.FEED_RECONNECTED,
        Event.ALERT_REFUSED,
        Event.ACCOUNT_NOT_TRADED,
    }
)

DESCRIPTIONS: dict[Event, str] = {
    Event.ORDER_FILLED: "an order was filled",
    Event.ORDER_REJECTED: "an order was rejected (the broker's reason)",
    Event.POSITION_CLOSED: "a position was closed (reason and P&L)",
    Event.BROKER_LOGIN_FAILED: "broker login or token renewal failed",
    Event.FEED_STALE: "the price feed went stale",
    Event.FEED_RECONNECTED: "the price feed reconnected",
    Event.ALERT_REFUSED: "an alert was refused (risk limit, market closed, stale)",
    Event.ACCOUNT_NOT_TRADED: "an alert did not trade on one of its accounts (and why)",
    Event.BOT_STARTED: "the bot was started",
    Event.BOT_STOPPED: "the bot was stopped",
    Event.KILL_SWITCH: "the kill switch was pulled",
    Event.DAILY_SUMMARY: "the day's summary after the close",
    Event.BROKER_STOP_LOST: "a stop resting at the broker was refused or cancelled there",
}

EXIT_REASONS = {
    "stop_loss": "stop-loss",
    "target": "target",
    "trailing_stop": "trailing stop",
    "trailing": "trailing stop",
    "signal": "signal",
    "manual": "manual",
    "square_off": "square-off",
    "kill_switch": "kill switch",
    "stop_loss_at_broker": "stop-loss at broker",
}


def _group_indian(digits: str) -> str:
    # Indian grouping (12,34,567): how traders here read rupee amounts.
    if len(digits) <= 3:
        return digits
    head, tail = digits[:-3], digits[-3:]
    groups = []
    while len(head) > 2:
        groups.insert(0, head[-2:])
        head = head[:-2]
    if head:
        groups.insert(0, head)
    return ",".join([*groups, tail])


def rupees(value: Decimal | int | float | str, *, signed: bool = False) -> str:
    """₹1,23,456.50; with `signed` a gain shows +₹ and a loss -₹."""
    amount = Decimal(str(value)).quantize(Decimal("0.01"))
    sign = "-" if amount < 0 else ("+" if signed and amount > 0 else "")
    whole, _, frac = f"{abs(amount):.2f}".partition(".")
    return f"{sign}₹{_group_indian(whole)}.{frac}"


def money(data: Mapping[str, Any], name: str) -> Decimal | None:
    """`name_paise` (integer paise) or `name` (rupees) from the caller's data."""
    paise = data.get(f"{name}_paise")
    if paise is not None:
        return Decimal(int(paise)) / 100
    value = data.get(name)
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"{name} is not a number: {value!r}") from exc


def _mode(data: Mapping[str, Any]) -> str:
    paper = data.get("paper")
    if paper is None:
        return ""
    return "PAPER" if paper else "LIVE"


def _tag(data: Mapping[str, Any]) -> str:
    mode = _mode(data)
    return f"[{mode}] " if mode else ""


def _lines(*pairs: tuple[str, object]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in pairs if v is not None and v != "")


def _contract(data: Mapping[str, Any]) -> str:
    symbol = str(data.get("symbol") or data.get("contract") or "?")
    exchange = data.get("exchange")
    return f"{exchange}:{symbol}" if exchange else symbol


def _fmt_price(value: Decimal | None) -> str | None:
    return rupees(value) if value is not None else None


def _order_filled(d: Mapping[str, Any]) -> tuple[str, str]:
    side = str(d.get("side", "")).upper()
    price = money(d, "price")
    title = f"{_tag(d)}{side} {d.get('quantity')} {_contract(d)} filled"
    if price is not None:
        title += f" @ {rupees(price)}"
    body = _lines(
        ("Side", side),
        ("Contract", _contract(d)),
        ("Quantity", d.get("quantity")),
        ("Price", _fmt_price(price)),
        ("Mode", _mode(d).lower()),
        ("Account", d.get("account")),
        ("Order", d.get("order_id")),
    )
    return title, body


def _order_rejected(d: Mapping[str, Any]) -> tuple[str, str]:
    side = str(d.get("side", "")).upper()
    reason = str(d.get("reason") or "no reason given")
    title = f"{_tag(d)}{side} {d.get('quantity')} {_contract(d)} rejected"
    # The broker's reason goes out verbatim: rewording it would hide what Angel actually said.
    body = _lines(
        ("Reason", reason),
        ("Side", side),
        ("Contract", _contract(d)),
        ("Quantity", d.get("quantity")),
        ("Price", _fmt_price(money(d, "price"))),
        ("Mode", _mode(d).lower()),
        ("Account", d.get("account")),
    )
    return title, body


def _broker_stop_lost(d: Mapping[str, Any]) -> tuple[str, str]:
    reason = str(d.get("reason") or "no reason given")
    title = f"{d.get('symbol')}: stop at broker lost, our monitor still guards it"
    body = _lines(
        ("Reason", reason),  # the broker's own words
        ("Position", d.get("position_id")),
        ("Contract", d.get("symbol")),
        ("What now", "our monitor still exits it at its stop while our servers run"),
    )
    return title, body


def _position_closed(d: Mapping[str, Any]) -> tuple[str, str]:
    raw = str(d.get("reason") or "")
    reason = EXIT_REASONS.get(raw.lower(), raw or "unknown")
    pnl = money(d, "pnl")
    title = f"{_tag(d)}{_contract(d)} closed ({reason})"
    if pnl is not None:
        title += f" P&L {rupees(pnl, signed=True)}"
    body = _lines(
        ("Exit reason", reason),
        ("P&L", rupees(pnl, signed=True) if pnl is not None else None),
        ("Contract", _contract(d)),
        ("Quantity", d.get("quantity")),
        ("Entry", _fmt_price(money(d, "entry_price"))),
        ("Exit", _fmt_price(money(d, "exit_price"))),
        ("Mode", _mode(d).lower()),
        ("Account", d.get("account")),
    )
    return title, body


def _broker_login_failed(d: Mapping[str, Any]) -> tuple[str, str]:
    what = "token renewal" if d.get("renewal") else "login"
    title = f"Broker {what} failed: {d.get('account') or d.get('client_id') or 'account'}"
    body = _lines(
        ("Reason", d.get("reason") or "unknown"),
        ("Account", d.get("account")),
        ("Client", d.get("client_id")),
        ("Effect", "orders on this account fail until it logs in again"),
    )
    return title, body


def _feed_stale(d: Mapping[str, Any]) -> tuple[str, str]:
    title = "Price feed stale"
    body = _lines(
        ("No ticks for", f"{d['seconds']} s" if d.get("seconds") is not None else None),
        ("Feed", d.get("feed")),
        ("Detail", d.get("detail")),
        ("Effect", "stop-loss, target and trailing checks wait for fresh prices"),
    )
    return title, body


def _feed_reconnected(d: Mapping[str, Any]) -> tuple[str, str]:
    title = "Price feed reconnected"
    down = d.get("down_seconds")
    body = _lines(
        ("Was down for", f"{down} s" if down is not None else None),
        ("Feed", d.get("feed")),
        ("Detail", d.get("detail") or "prices are flowing again"),
    )
    return title, body


def _alert_refused(d: Mapping[str, Any]) -> tuple[str, str]:
    reason = str(d.get("reason") or "refused")
    title = f"Alert refused: {reason}"
    body = _lines(
        ("Reason", reason),
        ("Webhook", d.get("link")),
        ("Action", d.get("action")),
        ("Symbol", d.get("symbol")),
        ("Detail", d.get("detail")),
    )
    return title, body


def _account_not_traded(d: Mapping[str, Any]) -> tuple[str, str]:
    account = str(d.get("account") or "account")
    reason = str(d.get("reason") or "not traded")
    title = f"Not traded on {account}: {reason}"
    body = _lines(
        ("Account", account),
        ("Reason", reason),
        ("Alert", d.get("alert_id")),
        ("Webhook", d.get("link")),
        ("Symbol", d.get("symbol")),
    )
    return title, body


def _bot(started: bool) -> Callable[[Mapping[str, Any]], tuple[str, str]]:
    def fmt(d: Mapping[str, Any]) -> tuple[str, str]:
        title = "Bot started" if started else "Bot stopped"
        effect = "alerts will be traded" if started else "alerts are recorded, not traded"
        return title, _lines(("By", d.get("by")), ("Reason", d.get("reason")), ("Effect", effect))

    return fmt


def _kill_switch(d: Mapping[str, Any]) -> tuple[str, str]:
    title = "KILL SWITCH: trading halted"
    body = _lines(
        ("By", d.get("by")),
        ("Reason", d.get("reason")),
        ("Positions being closed", d.get("positions")),
        ("Effect", "no new orders until the bot is started again"),
    )
    return title, body


def _daily_summary(d: Mapping[str, Any]) -> tuple[str, str]:
    realized = money(d, "realized_pnl") or Decimal(0)
    charges = money(d, "charges") or Decimal(0)
    net = realized - charges
    title = f"{_tag(d)}Day summary {d.get('date', '')}: net {rupees(net, signed=True)}".replace(
        "  ", " "
    )
    body = _lines(
        ("Date", d.get("date")),
        ("Trades", d.get("trades", 0)),
        ("Realized P&L", rupees(realized, signed=True)),
        ("Charges", rupees(charges)),
        ("Net", rupees(net, signed=True)),
        ("Failures", d.get("failures", 0)),
        ("Mode", _mode(d).lower()),
    )
    return title, body


_FORMATTERS: dict[Event, Callable[[Mapping[str, Any]], tuple[str, str]]] = {
    Event.ORDER_FILLED: _order_filled,
    Event.ORDER_REJECTED: _order_rejected,
    Event.POSITION_CLOSED: _position_closed,
    Event.BROKER_LOGIN_FAILED: _broker_login_failed,
    Event.FEED_STALE: _feed_stale,
    Event.FEED_RECONNECTED: _feed_reconnected,
    Event.ALERT_REFUSED: _alert_refused,
    Event.ACCOUNT_NOT_TRADED: _account_not_traded,
    Event.BOT_STARTED: _bot(True),
    Event.BOT_STOPPED: _bot(False),
    Event.KILL_SWITCH: _kill_switch,
    Event.DAILY_SUMMARY: _daily_summary,
    Event.BROKER_STOP_LOST: _broker_stop_lost,
}


def format_message(event: Event | str, data: Mapping[str, Any]) -> tuple[str, str]:
    """(title, body) for `event`. Raises ValueError for an unknown event or unusable data."""
    try:
        ev = Event(event)
    except ValueError as exc:
        raise ValueError(f"unknown notification event {event!r}") from exc
    title, body = _FORMATTERS[ev](data)
    return title.strip()[:250], body
