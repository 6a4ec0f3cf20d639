"""One Telegram message in, the answer out: binding with a code, then the bound user's
commands. Every query is scoped to the user the chat is bound to, so no chat can read or
move another user's bot; a chat bound to nobody is ignored (audited, no answer).

`handle` does the work and returns the reply text (None: stay silent). Framework-free: the
polling service (`services.telegram_bot`) turns Bot API updates into `Incoming` and sends the
replies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal

import redis
from sqlmodel import Session, col, select

from ats_app.engine.core import clock
from ats_app.engine.core.clock import IST
from ats_app.engine.core.errors import ValidationError
from ats_app.engine.execution.halt import KillReport
from ats_app.engine.execution.order_history import paise_to_rupees
from ats_app.engine.notify.messages import rupees
from ats_app.engine.store import audit
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import BotState, Order, Position, User
from ats_app.engine.telegram import binding

log = logging.getLogger("ats.telegram")

KILL_CONFIRM_S = 60
CONFIRM_WORD = "YES"
MAX_LISTED = 10  # positions or orders in one answer: a phone screen, not a report
CANCELLED = "Kill switch not engaged: cancelled."
START_CANCELLED = "Bot not started: cancelled."
# Commands that trade or start trading ask for a YES first. /start too: Telegram's own START
# button (shown after a chat is cleared) sends a bare /start, and must not restart a bot
# its trader stopped.
CONFIRMED = ("/kill", "/start")
HELP = ("Commands: /status, /positions, /pnl, /orders, /start (start trading: asks to "
        "confirm), /stop (stop taking entries), /kill (exit everything: asks to confirm)")


@dataclass(frozen=True)
class Incoming:
    """A text message as the Bot API delivers it."""

    chat_id: int
    chat_type: str  # private / group / supergroup / channel
    username: str | None
    text: str


def split_command(text: str) -> tuple[str, str]:
    """'/kill@AtsBot now' -> ('/kill', 'now'); text that is no command -> ('', text)."""
    head, _, rest = text.strip().partition(" ")
    if not head.startswith("/"):
        return "", text.strip()
    return head.split("@", 1)[0].lower(), rest.strip()


def _confirm_key(chat_id: int) -> str:
    return f"ats:tg:confirm:{chat_id}"


def _ignore(msg: Incoming, why: str) -> None:
    audit.record_now("telegram.ignored", subject=str(msg.chat_id), reason=why,
                     chat_type=msg.chat_type, username=msg.username, text=msg.text[:64])


def _bind(msg: Incoming, code: str, conn: redis.Redis) -> str:
    user_id = binding.redeem(conn, code, msg.chat_id)
    if user_id is None:
        audit.record_now("telegram.bind_refused", subject=str(msg.chat_id),
                         username=msg.username, reason="wrong or expired code")
        return ("That code is wrong or has expired. Get a new one on the Profile page of "
                "your ATS dashboard and send: /link CODE")
    try:
        with session_scope() as s:
            binding.bind(s, user_id, msg.chat_id, msg.username)
            user = s.get(User, user_id)
            name = user.username if user else str(user_id)
    except ValidationError as exc:
        audit.record_now("telegram.bind_refused", user_id=user_id, subject=str(msg.chat_id),
                         reason=str(exc))
        return f"Not linked: {exc}."
    return f"Linked: this chat now controls {name}'s bot.\n{HELP}"


def handle(msg: Incoming, conn: redis.Redis, *,
           kill: Callable[[int], str] | None = None) -> str | None:
    """The reply to `msg`, or None to stay silent. `kill` runs the kill switch for a user
    and says what it did (default: `execution.halt.kill`)."""
    if msg.chat_type != "private":
        _ignore(msg, "not a private chat")  # in a group, anyone in it could trade
        return None
    cmd, rest = split_command(msg.text)
    if cmd in ("/link", "/start") and rest:  # /start CODE: Telegram's deep link t.me/bot?start=
        return _bind(msg, rest, conn)
    with session_scope() as s:
        user_id = binding.user_of_chat(s, msg.chat_id)
    if user_id is None:
        _ignore(msg, "chat not linked to any user")
        return None
    raw = conn.getdel(_confirm_key(msg.chat_id))
    pending = raw.decode() if isinstance(raw, bytes) else raw  # "/kill:USER_ID"
    if pending is not None:
        asked, _, owner = pending.partition(":")
        if msg.text.strip().upper() == CONFIRM_WORD and owner == str(user_id):
            audit.record_now("telegram.command", user_id=user_id, subject=f"{asked} confirmed",
                             chat_id=msg.chat_id)
            return (kill or _kill)(user_id) if asked == "/kill" else _set_running(user_id, True)
        cancelled = CANCELLED if asked == "/kill" else START_CANCELLED
        if not cmd:
            return cancelled
        reply = _command(msg, cmd, user_id, conn)
        return f"{cancelled}\n{reply}"
    return _command(msg, cmd, user_id, conn)


def _command(msg: Incoming, cmd: str, user_id: int, conn: redis.Redis) -> str:
    if not cmd:
        return f"I answer commands only.\n{HELP}"
    audit.record_now("telegram.command", user_id=user_id, subject=cmd, chat_id=msg.chat_id)
    if cmd in CONFIRMED:
        conn.set(_confirm_key(msg.chat_id), f"{cmd}:{user_id}", ex=KILL_CONFIRM_S)
        what = ("Kill switch: stop the bot, cancel open entry orders and exit EVERY open "
                "position at market." if cmd == "/kill" else
                "Start the bot: alerts trade again from now on (a kill switch is released).")
        return (f"{what} Reply {CONFIRM_WORD} within {KILL_CONFIRM_S} s to go ahead; "
                "anything else cancels.")
    answer = _COMMANDS.get(cmd)
    if answer is None:
        return f"Unknown command {cmd}.\n{HELP}"
    return answer(user_id)


def kill_summary(report: KillReport) -> str:
    parts = ["Kill switch engaged: bot stopped, entries refused until /start.",
             f"Exits sent: {len(report.exits_enqueued)} position(s).",
             f"Entry orders cancelled: {len(report.cancelled)}."]
    if report.still_in_flight or report.cancel_failed:
        parts.append(f"Still working: {len(report.still_in_flight) + len(report.cancel_failed)}"
                     " order(s): check the dashboard.")
    return "\n".join(parts)


def _kill(user_id: int) -> str:
    from ats_app.engine.execution import halt

    return kill_summary(halt.kill(user_id, settle_seconds=10.0))


def _set_running(user_id: int, running: bool) -> str:
    from ats_app.engine.risk import bot

    with session_scope() as s:
        bot.set_running(s, user_id, running)
    if running:
        return "Bot started: alerts trade again (a kill switch is released)."
    return "Bot stopped: new alerts are recorded, not traded. Open positions stay watched."


def _day_start(now: datetime) -> datetime:
    return datetime.combine(clock.ist(now).date(), time(), IST)


def _open_positions(s: Session, user_id: int) -> list[Position]:
    return list(s.exec(select(Position).where(Position.user_id == user_id)
                       .where(col(Position.status).in_(("OPEN", "EXITING")))
                       .order_by(col(Position.id))).all())


def _unrealized(positions: list[Position]) -> dict[int, Decimal]:
    """Each open position's P&L at the feed's latest price (positions without one: absent)."""
    from ats_app.engine.broker.prices import read_tick
    from ats_app.engine.core.money import to_rupees
    from ats_app.engine.store.queueing import connection

    out: dict[int, Decimal] = {}
    try:
        conn = connection()
        for p in positions:
            tick = read_tick(conn, p.exchange, p.symbol_token, max_age=None)
            if tick is not None and p.id is not None:
                out[p.id] = (tick.ltp - (to_rupees(p.entry_price_paise) or Decimal(0))) \
                    * p.quantity
    except redis.RedisError:
        log.warning("no prices for /positions (Redis down)")
    return out


def _realized_today(s: Session, user_id: int) -> Decimal:
    start = _day_start(clock.now())
    paise = sum(p or 0 for p in s.exec(
        select(Position.realized_pnl_paise).where(Position.user_id == user_id)
        .where(Position.status == "CLOSED").where(col(Position.closed_at) >= start)).all())
    return Decimal(paise) / 100


def status(user_id: int) -> str:
    from ats_app.engine.core.config import settings
    from ats_app.engine.risk.gate import is_halted

    with session_scope() as s:
        state = s.get(BotState, user_id)
        halted = is_halted(s, user_id)
        positions = _open_positions(s, user_id)
        realized = _realized_today(s, user_id)
    running = bool(state and state.running)
    lines = [f"Bot: {'RUNNING' if running else 'STOPPED'}"
             + (" · kill switch engaged" if halted else ""),
             f"Mode: {settings().trading_mode}",
             f"Open positions: {len(positions)}",
             f"Today's realized P&L: {rupees(realized, signed=True)}",
             f"As of {clock.ist_stamp(clock.now())}"]
    return "\n".join(lines)


def positions(user_id: int) -> str:
    with session_scope() as s:
        rows = _open_positions(s, user_id)
    if not rows:
        return "No open positions."
    pnl = _unrealized(rows)
    lines = [f"Open positions ({len(rows)}):"]
    for p in rows[:MAX_LISTED]:
        at = paise_to_rupees(p.entry_price_paise)
        now = rupees(pnl[p.id], signed=True) if p.id in pnl else "no price yet"
        tag = " (exiting)" if p.status == "EXITING" else ""
        lines.append(f"{p.symbol} ×{p.quantity} @ {at} · P&L {now}{tag}")
    if len(rows) > MAX_LISTED:
        lines.append(f"…and {len(rows) - MAX_LISTED} more on the dashboard.")
    return "\n".join(lines)


def pnl(user_id: int) -> str:
    with session_scope() as s:
        realized = _realized_today(s, user_id)
        rows = _open_positions(s, user_id)
    open_pnl = sum(_unrealized(rows).values(), Decimal(0))
    return "\n".join([f"Today ({clock.ist(clock.now()):%d-%m-%Y} IST):",
                      f"Realized: {rupees(realized, signed=True)}",
                      f"Open positions: {rupees(open_pnl, signed=True)}",
                      f"Total: {rupees(realized + open_pnl, signed=True)}"])


def orders(user_id: int) -> str:
    start = _day_start(clock.now())
    with session_scope() as s:
        rows = list(s.exec(select(Order).where(Order.user_id == user_id)
                           .where(col(Order.created_at) >= start)
                           .order_by(col(Order.id).desc()).limit(MAX_LISTED)).all())
    if not rows:
        return "No orders today."
    lines = ["Today's latest orders:"]
    for o in rows:
        price = paise_to_rupees(o.average_price_paise)
        lines.append(f"{clock.ist(o.created_at):%H:%M:%S} {o.side} {o.symbol} {o.quantity} "
                     f"{o.status}" + (f" @ {price}" if price else ""))
    return "\n".join(lines)


_COMMANDS: dict[str, Callable[[int], str]] = {
    "/status": status,
    "/positions": positions,
    "/pnl": pnl,
    "/orders": orders,
    "/stop": lambda uid: _set_running(uid, False),
    "/help": lambda uid: HELP,
}
