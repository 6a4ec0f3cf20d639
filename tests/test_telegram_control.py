"""Telegram two-way control end to end: the real pyTelegramBotAPI client long-polling a local
Bot API server over real HTTP (tests/bot_api_server.py), the real database (SQLite and
PostgreSQL) and Redis, the engine's own bot, kill-switch and position functions."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from sqlmodel import select

from ats_app.engine.core.config import ConfigError
from ats_app.engine.risk import bot
from ats_app.engine.risk.gate import is_halted
from ats_app.engine.services import telegram_bot
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import AuditEvent, Order, Position, TelegramChat, utcnow
from ats_app.engine.telegram import binding, commands
from ats_app.engine.tenants import users
from tests.bot_api_server import BotApiServer

TOKEN = "123456:TEST-token_abc"
ASHA, RAVI, STRANGER = 5001, 5002, 5999


@pytest.fixture
def api(database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
        ) -> Iterator[BotApiServer]:
    with BotApiServer(TOKEN) as server:
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
        monkeypatch.setenv("TELEGRAM_API_URL", server.url)
        yield server


@pytest.fixture
def conn(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def traders() -> dict[str, int]:
    out = {}
    with session_scope() as s:
        for name in ("asha", "ravi"):
            uid = users.create_user(s, name, "password123", name.title(), "K").id
            assert uid is not None
            bot.set_running(s, uid, True)
            out[name] = uid
    return out


def _poll(api: BotApiServer, conn: redis.Redis) -> None:
    client = telegram_bot.make_bot(binding.telegram_config())
    # 1 s: the client cannot ask for 0 (it sends its own 10 s default instead); a queued
    # message is answered at once anyway.
    telegram_bot.poll_once(client, conn, timeout=1)


def _say(api: BotApiServer, conn: redis.Redis, chat: int, text: str, **kw: str) -> list[str]:
    """Send one message and poll; the bot's new replies to that chat."""
    before = len(api.replies_to(chat))
    api.say(chat, text, **kw)
    _poll(api, conn)
    return api.replies_to(chat)[before:]


def _audits(action: str) -> list[AuditEvent]:
    with session_scope() as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def _bind(api: BotApiServer, conn: redis.Redis, uid: int, chat: int, name: str) -> None:
    code = binding.new_code(conn, uid)
    (reply,) = _say(api, conn, chat, f"/link {code.lower()}", username=name)
    assert reply.startswith("Linked: this chat now controls"), reply


def _seed(uid: int, order: bool = True) -> None:
    """An open paper position with a price in Redis, one closed today at +₹750, an order."""
    from ats_app.engine.broker.prices import write_tick
    from ats_app.engine.store.queueing import connection

    now = utcnow()
    with session_scope() as s:
        s.add(Position(user_id=uid, exchange="NFO", symbol="NIFTY26DEC24000CE",
                       symbol_token="43210", quantity=75, entry_price_paise=10000,
                       status="OPEN", paper=True))
        s.add(Position(user_id=uid, exchange="NFO", symbol="NIFTY26DEC24100PE",
                       symbol_token="43211", quantity=75, entry_price_paise=10000,
                       status="CLOSED", realized_pnl_paise=75_000, paper=True,
                       closed_at=now - timedelta(minutes=1)))
        if order:  # (a filled entry without its position: the kill switch waits for it)
            s.add(Order(user_id=uid, client_order_id="A1E0", exchange="NFO",
                        symbol="NIFTY26DEC24000CE", symbol_token="43210", side="BUY",
                        quantity=75, status="FILLED", filled_quantity=75,
                        average_price_paise=10000, paper=True))
    write_tick(connection(), "NFO", "43210", "102.50")


def test_binding_with_a_code_and_strangers_ignored(api: BotApiServer, conn: redis.Redis,
                                                     traders: dict[str, int]) -> None:
    uid = traders["asha"]
    # Before binding: no answer at all, only the audit log knows.
    assert _say(api, conn, ASHA, "/status") == []
    code = binding.new_code(conn, uid)
    assert len(code) == 8 and set(code) <= set(binding.CODE_ALPHABET)
    assert _say(api, conn, STRANGER, "/link WRONGCODE")[0].startswith("That code is wrong")
    (linked,) = _say(api, conn, ASHA, f"/start {code}", username="asha_k")  # the deep link
    assert "asha's bot" in linked and "/kill" in linked
    with session_scope() as s:
        row = s.get(TelegramChat, uid)
        assert row is not None and (row.chat_id, row.username) == (ASHA, "asha_k")
    # One time only: the stranger cannot reuse it, nor guess for ever.
    assert _say(api, conn, STRANGER, f"/link {code}")[0].startswith("That code is wrong")
    for _ in range(binding.MAX_CODE_TRIES):
        _say(api, conn, STRANGER, "/link AAAAAAAA")
    fresh = binding.new_code(conn, traders["ravi"])
    assert _say(api, conn, STRANGER, f"/link {fresh}")[0].startswith("That code is wrong")
    # Unknown chats and group chats: ignored, audited, nothing changed.
    assert _say(api, conn, STRANGER, "/stop") == []
    assert _say(api, conn, ASHA, "/stop", chat_type="group") == []
    with session_scope() as s:
        assert bot.is_running(s, uid)
    ignored = [e.detail for e in _audits("telegram.ignored")]
    assert sum("chat not linked" in d for d in ignored) == 2  # the first /status and /stop
    assert any("not a private chat" in d for d in ignored)
    assert len(_audits("telegram.bind_refused")) >= 3 and len(_audits("telegram.bound")) == 1
    assert all(code not in e.detail for e in _audits("telegram.code_issued"))
    assert "getUpdates" in api.calls and "sendMessage" in api.calls


def test_each_command_answers_for_the_bound_user_only(api: BotApiServer, conn: redis.Redis,
                                                      traders: dict[str, int]) -> None:
    asha, ravi = traders["asha"], traders["ravi"]
    _bind(api, conn, asha, ASHA, "asha")
    _bind(api, conn, ravi, RAVI, "ravi")
    _seed(asha)

    (status,) = _say(api, conn, ASHA, "/status")
    assert "Bot: RUNNING" in status and "Open positions: 1" in status
    assert "+₹750.00" in status and status.rstrip().endswith("IST")
    (positions,) = _say(api, conn, ASHA, "/positions@AtsBot")
    assert "NIFTY26DEC24000CE ×75 @ 100.00 · P&L +₹187.50" in positions
    (pnl,) = _say(api, conn, ASHA, "/pnl")
    assert "Realized: +₹750.00" in pnl and "Open positions: +₹187.50" in pnl
    assert "Total: +₹937.50" in pnl
    (orders,) = _say(api, conn, ASHA, "/orders")
    assert "BUY NIFTY26DEC24000CE 75 FILLED @ 100.00" in orders

    # Ravi's chat sees only Ravi's (nothing) and moves only Ravi's bot.
    assert _say(api, conn, RAVI, "/positions") == ["No open positions."]
    assert _say(api, conn, RAVI, "/orders") == ["No orders today."]
    assert _say(api, conn, RAVI, "/stop")[0].startswith("Bot stopped")
    with session_scope() as s:
        assert bot.is_running(s, asha) and not bot.is_running(s, ravi)
    # Asha's code used from Ravi's chat does not hand Asha's bot to Ravi's chat.
    code = binding.new_code(conn, asha)
    assert _say(api, conn, RAVI, f"/link {code}")[0].startswith(
        "Not linked: this chat already controls another user's bot")
    with session_scope() as s:
        assert s.get(TelegramChat, asha).chat_id == ASHA  # type: ignore[union-attr]

    assert _say(api, conn, ASHA, "/stop")[0].startswith("Bot stopped")
    with session_scope() as s:
        assert not bot.is_running(s, asha)
    assert "Bot: STOPPED" in _say(api, conn, ASHA, "/status")[0]
    # /start asks first: Telegram's START button sends a bare /start after a chat is cleared
    assert "Start the bot" in _say(api, conn, ASHA, "/start")[0]
    assert _say(api, conn, ASHA, "hello") == ["Bot not started: cancelled."]
    with session_scope() as s:
        assert not bot.is_running(s, asha)
    _say(api, conn, ASHA, "/start")
    assert _say(api, conn, ASHA, "yes")[0].startswith("Bot started")
    with session_scope() as s:
        assert bot.is_running(s, asha)
    assert _say(api, conn, ASHA, "/sell everything")[0].startswith("Unknown command /sell")
    assert _say(api, conn, ASHA, "hello")[0].startswith("I answer commands only")
    assert len(_audits("telegram.command")) >= 9


def test_kill_asks_for_a_confirmation_reply(api: BotApiServer, conn: redis.Redis,
                                            traders: dict[str, int]) -> None:
    asha = traders["asha"]
    _bind(api, conn, asha, ASHA, "asha")
    _seed(asha, order=False)
    (ask,) = _say(api, conn, ASHA, "/kill")
    assert "Reply YES within 60 s" in ask
    assert _say(api, conn, ASHA, "no thanks") == ["Kill switch not engaged: cancelled."]
    with session_scope() as s:
        assert bot.is_running(s, asha) and not is_halted(s, asha)
    assert _say(api, conn, ASHA, "yes")[0].startswith("I answer commands only")  # too late
    _say(api, conn, ASHA, "/kill")
    (other,) = _say(api, conn, ASHA, "/status")  # another command cancels it, and says so
    assert other.startswith("Kill switch not engaged: cancelled.\nBot: RUNNING")

    _say(api, conn, ASHA, "/kill")
    (done,) = _say(api, conn, ASHA, "yes")
    assert done.startswith("Kill switch engaged") and "Exits sent: 1 position(s)" in done
    with session_scope() as s:
        assert not bot.is_running(s, asha) and is_halted(s, asha)
        exiting = s.exec(select(Position).where(Position.user_id == asha)
                         .where(Position.status != "CLOSED")).all()
    assert len(exiting) == 1  # its exit is queued for the worker
    assert any(e.subject == "/kill confirmed" for e in _audits("telegram.command"))


def test_the_service_loop_polls_until_stopped_and_keeps_its_offset(
        api: BotApiServer, conn: redis.Redis, traders: dict[str, int]) -> None:
    _bind(api, conn, traders["asha"], ASHA, "asha")
    stop = threading.Event()
    loop = threading.Thread(target=telegram_bot.serve,
                            args=(stop, binding.telegram_config(), 1), daemon=True)
    loop.start()
    try:
        api.say(ASHA, "/status")
        for _ in range(50):
            if any("Bot: RUNNING" in t for t in api.replies_to(ASHA)):
                break
            stop.wait(0.1)
        else:
            raise AssertionError(api.replies_to(ASHA))
    finally:
        stop.set()
        loop.join(timeout=5)
    assert not loop.is_alive()
    # The next offset is kept: a restarted service does not answer /status again.
    before = len(api.sent)
    _poll(api, conn)
    assert len(api.sent) == before


def test_config_and_command_parsing() -> None:
    cfg = binding.telegram_config({"TELEGRAM_BOT_TOKEN": " t ", "TELEGRAM_API_URL": ""})
    assert cfg.enabled and cfg.api_url == binding.DEFAULT_API_URL
    assert not binding.telegram_config({}).enabled
    with pytest.raises(ConfigError, match="TELEGRAM_API_URL"):
        binding.telegram_config({"TELEGRAM_API_URL": "ftp://x"})
    assert commands.split_command("/Kill@AtsBot now ") == ("/kill", "now")
    assert commands.split_command(" yes ") == ("", "yes")
    assert binding.normalize_code("ab-cd ef12") == "ABCDEF12"


def test_the_cli_service_answers_and_stops_on_sigterm(
        api: BotApiServer, conn: redis.Redis, traders: dict[str, int]) -> None:
    """`python -m ats_app.cli telegram`, as the supervisor and deploy files run it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    _bind(api, conn, traders["asha"], ASHA, "asha")
    api.say(ASHA, "/status")
    proc = subprocess.Popen([sys.executable, "-m", "ats_app.cli", "telegram"],
                            env=dict(os.environ), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not any("Bot: RUNNING" in t for t in api.replies_to(ASHA)):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    log = proc.stderr.read() if proc.stderr else ""
    assert "telegram control started" in log and TOKEN not in log
    # Without a token it says so and ends at once.
    env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    done = subprocess.run([sys.executable, "-m", "ats_app.cli", "telegram"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "TELEGRAM_BOT_TOKEN is not set" in done.stderr
