"""The Telegram control service: long-polls the Bot API's getUpdates through
pyTelegramBotAPI and answers each message (`telegram.commands`) with sendMessage.

Runs only when `TELEGRAM_BOT_TOKEN` is set (`python -m ats_app.cli telegram`; the dev
supervisor starts it then). One process per bot token: Telegram hands each update to one
getUpdates caller. The next offset is kept in Redis, so a restart neither replays a
confirmed `/kill` reply nor skips a message.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

import redis
import telebot
from telebot import apihelper

from ats_app.engine.telegram import commands
from ats_app.engine.telegram.binding import TelegramConfig, telegram_config

log = logging.getLogger("ats.telegram")

OFFSET_KEY = "ats:tg:offset"
POLL_TIMEOUT_S = 25  # Telegram holds getUpdates open this long when nothing comes
MAX_BACKOFF_S = 30.0


def make_bot(cfg: TelegramConfig) -> telebot.TeleBot:
    """The client, pointed at `cfg.api_url` (the library's module-wide API_URL)."""
    assert cfg.token
    apihelper.API_URL = cfg.api_url + "/bot{0}/{1}"
    return telebot.TeleBot(cfg.token, threaded=False)


def incoming(update: Any) -> commands.Incoming | None:
    """A text message from an update (edits, joins, stickers...: None, nothing to do)."""
    msg = getattr(update, "message", None)
    if msg is None or not isinstance(getattr(msg, "text", None), str):
        return None
    sender = getattr(msg, "from_user", None)
    return commands.Incoming(chat_id=int(msg.chat.id), chat_type=str(msg.chat.type),
                             username=getattr(sender, "username", None), text=msg.text)


def poll_once(bot: telebot.TeleBot, conn: redis.Redis, timeout: int = POLL_TIMEOUT_S) -> int:
    """One getUpdates call and its answers; the number of updates handled."""
    raw = conn.get(OFFSET_KEY)
    offset = int(raw) if raw else None
    updates = bot.get_updates(offset=offset, timeout=timeout + 10,
                              long_polling_timeout=timeout)
    with _handling:
        _answer(bot, conn, updates)
    return len(updates)


# Held while updates are handled: a stop waits for the command in hand (a /kill), never for
# an idle getUpdates that Telegram may hold open for POLL_TIMEOUT_S.
_handling = threading.Lock()


def _answer(bot: telebot.TeleBot, conn: redis.Redis, updates: list[Any]) -> None:
    for update in updates:
        # Moved past before handling: an answer that fails is not worth running a command
        # twice (a /start, a confirmed /kill) on the next poll.
        conn.set(OFFSET_KEY, update.update_id + 1)
        msg = incoming(update)
        if msg is None:
            continue
        try:
            reply = commands.handle(msg, conn)
        except Exception:
            log.exception("telegram: handling a message from chat %s failed", msg.chat_id)
            reply = "Something went wrong; nothing more was done. Check the dashboard."
        if reply:
            try:
                bot.send_message(msg.chat_id, reply)
            except Exception as exc:
                log.warning("telegram: sendMessage to %s failed: %s", msg.chat_id,
                            type(exc).__name__)


def serve(stop: threading.Event, cfg: TelegramConfig | None = None,
          timeout: int = POLL_TIMEOUT_S) -> None:
    """Poll until `stop` is set, backing off while Telegram or Redis is unreachable."""
    from ats_app.engine.store.queueing import connection

    cfg = cfg or telegram_config()
    bot = make_bot(cfg)
    conn = connection()
    backoff = 1.0
    while not stop.is_set():
        try:
            poll_once(bot, conn, timeout)
            backoff = 1.0
        except (apihelper.ApiException, redis.RedisError, OSError) as exc:
            # Never the exception's text: the library's message holds the URL, and so the
            # bot token.
            log.warning("telegram: poll failed (%s); again in %.0f s", type(exc).__name__,
                        backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)


def run_telegram() -> None:
    from ats_app.engine.services.processes import STOP_GRACE_S, exit_within

    logging.basicConfig(level=logging.INFO, format="%(asctime)s telegram %(levelname)s %(message)s")
    cfg = telegram_config()
    if not cfg.enabled:
        log.info("TELEGRAM_BOT_TOKEN is not set: no Telegram control")
        return
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()
        exit_within(STOP_GRACE_S)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("telegram control started (%s)", cfg.api_url)
    started = time.monotonic()
    # The poll runs in a daemon thread: a stop finishes the update being handled and ends,
    # the idle getUpdates dies with the process (its updates are fetched again next time).
    threading.Thread(target=serve, args=(stop, cfg), daemon=True, name="telegram").start()
    stop.wait()
    with _handling:
        log.info("telegram control stopped after %.0f s", time.monotonic() - started)
