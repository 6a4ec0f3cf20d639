"""The what-if replay: trades (a link's closed positions or a TradingView export) replayed on
the broker's 1-minute candles under a grid of stop-loss, target and trailing settings.

The rules are `replay_rules`; this module gathers the trades, the candles (`candles`, cached)
and runs the grid. The dashboard's replays run as RQ jobs (`run_job`) that write their
progress and result on a `ReplayRun` row the page reads; the CLI runs `replay_trades` inline.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from itertools import product
from typing import Any

import redis
from sqlmodel import Session, col, select

from ats_app.engine.broker.base import Contract, Product
from ats_app.engine.broker.charges import Segment, segment_for
from ats_app.engine.broker.errors import BrokerError
from ats_app.engine.core.errors import AtsError, Conflict, NotFound, ValidationError
from ats_app.engine.core.money import to_rupees
from ats_app.engine.reports import candles as candle_cache
from ats_app.engine.reports.metrics import setting_result
from ats_app.engine.reports.replay_rules import (
    Exit,
    Setting,
    Trade,
    TradeWindow,
    considered,
    replay_trade,
    signal_price,
)
from ats_app.engine.reports.tradingview_trades import parse_trades
from ats_app.engine.store import audit
from ats_app.engine.store.models import Alert, Position, ReplayRun, WebhookLink, utcnow

__all__ = [
    "ReplayTrade",
    "apply_setting",
    "create_run",
    "link_trades",
    "parse_grid",
    "replay_trades",
    "run_grid",
    "run_job",
    "settings_grid",
    "tradingview_trades",
]

log = logging.getLogger("ats.reports.replay")

MAX_GRID = 1000
MAX_TRADES = 5000
REPLAY_JOB = "ats_app.engine.reports.replay.run_job"
ProgressFn = Callable[[int, str], None]


@dataclass(frozen=True)
class ReplayTrade:
    trade: Trade
    exchange: str
    token: str
    symbol: str
    # A link's trade whose exit signal carried no price: read it from the candles
    # (`signal_price`); trade.exit_price is then only the fallback.
    price_from_candles: bool = False
    real: Exit | None = None  # what really happened (a link's position), for "actual"

    @property
    def segment(self) -> Segment:
        return segment_for(Contract(self.exchange, self.symbol, self.token, 1, Decimal("0.05")),
                           Product.INTRADAY)


# --- inputs ----------------------------------------------------------------------------------

def parse_grid(text: str | Sequence[object], flag: str) -> list[Decimal]:
    """A comma list of percentages ("0.2,0.5"); 0 turns the level off."""
    parts = text.split(",") if isinstance(text, str) else [str(v) for v in text]
    values: list[Decimal] = []
    for part in parts:
        p = part.strip()
        if not p:
            continue
        try:
            v = Decimal("0" if p.lower() == "off" else p)
        except InvalidOperation:
            raise ValidationError(f"{flag}: {p!r} is not a percentage", flag) from None
        if not v.is_finite() or v < 0:
            raise ValidationError(f"{flag}: {p!r} must be 0 (off) or a positive percentage",
                                  flag)
        if v not in values:
            values.append(v)
    if not values:
        raise ValidationError(f"{flag}: give at least one percentage (0 turns it off)", flag)
    return values


def settings_grid(sl: Sequence[Decimal], target: Sequence[Decimal],
                  tsl: Sequence[Decimal]) -> list[Setting]:
    if len(sl) * len(target) * len(tsl) > MAX_GRID:
        raise ValidationError(f"the grid has {len(sl) * len(target) * len(tsl)} settings; at "
                              f"most {MAX_GRID}", "sl")
    out = []
    for a, b, c in product(sl, target, tsl):
        try:
            out.append(Setting(a, b, c))
        except ValueError as exc:
            raise ValidationError(str(exc), "sl") from None
    return out


def _exit_signals(session: Session, user_id: int, link_id: int) -> list[tuple[datetime, str,
                                                                             Decimal | None]]:
    """The link's alerts in time order: (received, action, the price the alert carried)."""
    out = []
    for at, action, payload in session.exec(
            select(Alert.received_at, Alert.action, Alert.payload)
            .where(Alert.user_id == user_id, Alert.link_id == link_id)
            .order_by(col(Alert.received_at))).all():
        price = None
        try:
            body = json.loads(payload)
            raw = next((v for k, v in body.items() if k.lower() == "price"), None)
            price = Decimal(str(raw)) if raw not in (None, "") else None
            if price is not None and (not price.is_finite() or price <= 0):
                price = None
        except (ValueError, AttributeError, InvalidOperation):
            price = None
        out.append((at, (action or "").lower(), price))
    return out


def _signal_after(alerts: Sequence[tuple[datetime, str, Decimal | None]],
                  opened: datetime) -> tuple[datetime, Decimal | None] | None:
    """The first exit alert after a position opened, unless an entry comes first (the
    strategy's entries and exits alternate, so a later exit belongs to a later trade)."""
    for at, action, price in alerts:
        if at <= opened:
            continue
        if action == "buy":
            return None
        if action in ("sell", "exit"):
            return at, price
    return None


def link_trades(session: Session, user_id: int, link_id: int) -> list[ReplayTrade]:
    """A link's closed positions, oldest first: the real fills and the real exit signals.

    The exit replayed under rule 4 is the strategy's own: for a position closed by its stop,
    target or trail, the link's next exit alert after it opened (its time, and its price, or
    the candles' price at that minute when it carried none); with no such alert, the
    position's own exit. One position per signal: a link trading several accounts opens one
    per account on the same contract in the same minute, and those are one trade."""
    link = session.exec(select(WebhookLink).where(WebhookLink.id == link_id,
                                                  WebhookLink.user_id == user_id)).first()
    if link is None:
        raise NotFound(f"webhook link {link_id} not found")
    rows = session.exec(
        select(Position)
        .where(Position.user_id == user_id, Position.link_id == link_id,
               Position.status == "CLOSED", col(Position.exit_price_paise).is_not(None))
        .order_by(col(Position.opened_at), col(Position.id))
    ).all()
    alerts = _exit_signals(session, user_id, link_id)
    seen: set[tuple[str, str, datetime]] = set()
    out: list[ReplayTrade] = []
    for p in rows:
        key = (p.exchange, p.symbol_token, p.opened_at.replace(second=0, microsecond=0))
        if key in seen or p.closed_at is None:
            continue
        seen.add(key)
        entry = to_rupees(p.entry_price_paise) or Decimal(0)
        exit_price = to_rupees(p.exit_price_paise) or Decimal(0)
        real = Exit(p.opened_at, entry, p.closed_at, exit_price, p.exit_reason or "unknown")
        signal = None if p.exit_reason == "signal" else _signal_after(alerts, p.opened_at)
        if signal is None:
            trade = Trade(p.opened_at, entry, p.closed_at, exit_price, p.quantity)
            out.append(ReplayTrade(trade, p.exchange, p.symbol_token, p.symbol, real=real))
        else:
            at, price = signal
            trade = Trade(p.opened_at, entry, at, price or exit_price, p.quantity)
            out.append(ReplayTrade(trade, p.exchange, p.symbol_token, p.symbol,
                                   price_from_candles=price is None, real=real))
    if not out:
        raise ValidationError(f"link {link_id} has no closed positions to replay", "link")
    return out[-MAX_TRADES:]


def tradingview_trades(text: str, symbol: str, exchange: str,
                       token: str) -> tuple[list[ReplayTrade], dict[str, int]]:
    parsed = parse_trades(text)
    if len(parsed.trades) > MAX_TRADES:
        raise ValidationError(f"{len(parsed.trades)} trades; at most {MAX_TRADES}", "trades")
    trades = [ReplayTrade(t, exchange, token, symbol) for t in parsed.trades]
    return trades, {"skipped_short": parsed.skipped_short, "skipped_open": parsed.skipped_open}


# --- candles and the grid -------------------------------------------------------------------

def windows(session: Session, broker: candle_cache.CandleSource | None, source: str,
            trades: Sequence[ReplayTrade], progress: ProgressFn | None = None,
            now: datetime | None = None) -> list[TradeWindow]:
    """Each trade with the candles rule 1 considers, downloading what the cache lacks."""
    days: dict[tuple[str, str], set[Any]] = {}
    for t in trades:
        days.setdefault((t.exchange, t.token), set()).update(
            candle_cache.days_of(t.trade.entry_time, t.trade.exit_time))
    loaded: dict[tuple[str, str], list[Any]] = {}
    for n, ((exchange, token), wanted) in enumerate(days.items(), start=1):
        def paged(done: int, total: int, n: int = n, what: str = f"{exchange} {token}") -> None:
            if progress is not None:
                progress(int(50 * (n - 1 + done / total) / len(days)),
                         f"candles: {what}, request {done} of {total}")

        by_day = candle_cache.load_days(session, broker, source, exchange, token, wanted,
                                        now=now, on_page=paged)
        loaded[(exchange, token)] = [c for d in sorted(by_day) for c in by_day[d]]
    out = []
    for t in trades:
        bars = loaded[(t.exchange, t.token)]
        trade = t.trade
        if t.price_from_candles:
            trade = replace(trade, exit_price=signal_price(bars, trade.exit_time,
                                                           trade.exit_price))
        out.append(TradeWindow(trade, considered(trade, bars)))
    return out


def run_grid(trades: Sequence[ReplayTrade], prepared: Sequence[TradeWindow],
             grid: Sequence[Setting], progress: ProgressFn | None = None) -> list[dict[str, Any]]:
    """One `replay --json` result per setting, in grid order."""
    quantities = [t.trade.quantity for t in trades]
    segments = [t.segment for t in trades]
    results = []
    step = max(1, len(grid) // 20)
    for i, setting in enumerate(grid):
        exits = [replay_trade(w.trade, w.candles, setting) for w in prepared]
        results.append(setting_result(setting, exits, quantities, segments))
        if progress is not None and (i + 1) % step == 0:
            progress(50 + int(50 * (i + 1) / len(grid)), f"settings: {i + 1} of {len(grid)}")
    return results


def replay_trades(session: Session, broker: candle_cache.CandleSource | None, source: str,
                  trades: Sequence[ReplayTrade], grid: Sequence[Setting],
                  progress: ProgressFn | None = None) -> dict[str, Any]:
    """The grid's results, plus `actual`: the trades as they happened (every level off)."""
    prepared = windows(session, broker, source, trades, progress)
    results = run_grid(trades, prepared, grid, progress)
    off = Setting(Decimal(0), Decimal(0), Decimal(0))
    if all(t.real is not None for t in trades):  # a link's: what its positions really did
        actual = setting_result(off, [t.real for t in trades if t.real is not None],
                                [t.trade.quantity for t in trades], [t.segment for t in trades])
    else:  # an export's own trades: every level off
        (actual,) = run_grid(trades, prepared, [off])
    return {"results": results, "actual": actual,
            "quantities": [t.trade.quantity for t in trades],
            "segments": [t.segment.value for t in trades],
            "candles_missing": sum(1 for w in prepared if not w.candles)}


# --- the dashboard's runs (RQ jobs) ---------------------------------------------------------

STUCK_AFTER = timedelta(hours=1)  # the job's own timeout: a run older is not running


def create_run(session: Session, user_id: int, *, source: str, label: str,
               link_id: int | None, params: dict[str, Any]) -> ReplayRun:
    """A new run, unless the user's previous one is still queued or running: a replay holds
    one of a trading worker's job threads, so one per user at a time."""
    busy = session.exec(
        select(ReplayRun.id).where(ReplayRun.user_id == user_id,
                                   col(ReplayRun.status).in_(("QUEUED", "RUNNING")),
                                   col(ReplayRun.created_at) > utcnow() - STUCK_AFTER)
    ).first()
    if busy is not None:
        raise Conflict(f"replay #{busy} is still running: wait for it to finish")
    run = ReplayRun(user_id=user_id, link_id=link_id, source=source, label=label[:255],
                    params=json.dumps(params, default=str))
    session.add(run)
    session.flush()
    audit.record(session, "replay.started", user_id=user_id, subject=str(run.id),
                 source=source, label=label[:120])
    return run


def enqueue(run_id: int, conn: redis.Redis) -> None:
    from rq import Queue

    from ats_app.engine.store.redis_conn import DEFAULT_QUEUE

    # The default queue: trading workers take it after exits and alerts, so a replay never
    # delays an order; candle downloads wait on Angel's limits inside the job, not here.
    Queue(DEFAULT_QUEUE, connection=conn).enqueue(
        REPLAY_JOB, run_id, job_id=f"replay-{run_id}", job_timeout=3600, result_ttl=3600,
        failure_ttl=7 * 24 * 3600)


def _exit_json(e: Exit | None) -> list[str] | None:
    return None if e is None else [e.exit_time.isoformat(), str(e.exit_price), e.reason]


def trades_to_json(trades: Sequence[ReplayTrade]) -> list[list[Any]]:
    return [[t.trade.entry_time.isoformat(), str(t.trade.entry_price),
             t.trade.exit_time.isoformat(), str(t.trade.exit_price), t.trade.quantity,
             t.exchange, t.token, t.symbol, t.price_from_candles, _exit_json(t.real)]
            for t in trades]


def trades_from_json(rows: Sequence[Sequence[Any]]) -> list[ReplayTrade]:
    out = []
    for row in rows:
        # rows stored before the last two columns existed (a run queued across an upgrade)
        a, b, c, d, q, ex, tok, sym, from_candles, real = [*row, False, None][:10]
        trade = Trade(datetime.fromisoformat(a), Decimal(b), datetime.fromisoformat(c),
                      Decimal(d), int(q))
        was = None if real is None else Exit(trade.entry_time, trade.entry_price,
                                             datetime.fromisoformat(real[0]),
                                             Decimal(real[1]), real[2])
        out.append(ReplayTrade(trade, ex, tok, sym, bool(from_candles), was))
    return out


def _update(run_id: int, **values: Any) -> None:
    from ats_app.engine.store.db import session_scope

    with session_scope() as s:
        run = s.get(ReplayRun, run_id)
        if run is not None:
            for k, v in values.items():
                setattr(run, k, v)
            s.add(run)


def run_job(run_id: int) -> None:
    """RQ job: replay a stored run, writing progress as it goes."""
    from ats_app.engine.store.db import session_scope
    from ats_app.engine.store.redis_conn import connect

    with session_scope() as s:
        run = s.get(ReplayRun, run_id)
        if run is None or run.status in ("DONE", "FAILED"):
            return
        user_id, params = run.user_id, json.loads(run.params)
    _update(run_id, status="RUNNING", progress=0, message="starting")
    last = [-1]

    def progress(pct: int, message: str) -> None:
        if pct != last[0]:
            last[0] = pct
            _update(run_id, progress=pct, message=message[:500])

    try:
        trades = trades_from_json(params["trades"])
        grid = settings_grid(parse_grid(params["sl"], "sl"), parse_grid(params["target"],
                             "target"), parse_grid(params["tsl"], "tsl"))
        with session_scope() as s:
            broker, source = candle_broker(s, user_id, params.get("account_id"), connect())
            result = replay_trades(s, broker, source, trades, grid, progress)
    except (AtsError, ValueError, BrokerError) as exc:  # said on the page, not retried
        why = exc.broker_message or str(exc) if isinstance(exc, BrokerError) else str(exc)
        _update(run_id, status="FAILED", message=f"{why}"[:500], finished_at=utcnow())
        return
    except Exception as exc:  # the page must show why, not spin forever
        log.exception("replay run %s failed", run_id)
        _update(run_id, status="FAILED", message=f"error: {exc}"[:500], finished_at=utcnow())
        raise
    _update(run_id, status="DONE", progress=100, message=f"{len(grid)} settings replayed",
            result=json.dumps(result), finished_at=utcnow())


# --- the broker that reads candles, and applying a setting -------------------------------

def candle_broker(session: Session, user_id: int | None, account_id: int | None,
                  r: redis.Redis) -> tuple[candle_cache.CandleSource, str]:
    """The account's broker session (its rate limits), and the cache's name for its server:
    the given account, else the user's first, else the local simulator when enabled."""
    from ats_app.engine.broker import factory
    from ats_app.engine.market.tickbus import server_name
    from ats_app.engine.tenants import accounts

    if account_id is None and user_id is not None:
        listed = accounts.list_accounts(session, user_id)
        account_id = listed[0].id if listed else None
    if account_id is not None and user_id is not None:
        creds, declared = accounts.credentials_and_declared_ip(session, user_id, account_id)
    else:
        sim = factory.simulator_credentials()
        if sim is None:
            raise ValidationError("no broker account to read candles through: add one on the "
                                  "Accounts page", "account")
        creds, declared = sim, None
    broker = factory.angel_broker(creds, r, declared_ip=declared)
    return broker, server_name(creds.base_url)


def instrument_token(session: Session, user_id: int | None, account_id: int | None, symbol: str,
                     exchange: str) -> str:
    """The symbol token of a tradingsymbol in the master of the server candles come from."""
    from ats_app.engine.broker import factory
    from ats_app.engine.execution.contracts import index_for
    from ats_app.engine.tenants import accounts

    if account_id is None and user_id is not None:
        listed = accounts.list_accounts(session, user_id)
        account_id = listed[0].id if listed else None
    if account_id is not None and user_id is not None:
        base_url = accounts.credentials(session, user_id, account_id).base_url
    else:
        sim = factory.simulator_credentials()
        base_url = sim.base_url if sim else None
    index, ex, sym = index_for(base_url), exchange.strip().upper(), symbol.strip()
    # The tradingsymbol as Angel spells it; a cash stock as TradingView names it (SBIN for
    # SBIN-EQ); or the symbol token itself.
    inst = (index.by_symbol(ex, sym)
            or (index.by_symbol(ex, f"{sym}-EQ") if ex in ("NSE", "BSE") else None)
            or index.by_token(ex, sym))
    if inst is None:
        raise ValidationError(f"{exchange.upper()}:{symbol} is not in the instrument master",
                              "symbol")
    return inst.token


def apply_setting(session: Session, user_id: int, link_id: int, setting: Setting) -> None:
    """Copy a replayed setting onto the link (0 turns a level off), audited."""
    from ats_app.engine.tenants import webhooks

    link = webhooks.get_link(session, user_id, link_id)  # NotFound for another user's link

    def level(v: Decimal) -> str | None:
        return str(v) if v else None

    webhooks.update_link(
        session, user_id, link_id, name=link.name, accounts=list(link.accounts),
        strategy_id=link.strategy_id, stop_loss_pct=level(setting.sl),
        target_pct=level(setting.target), trailing_stop_pct=level(setting.tsl),
        paper=link.paper, enabled=link.enabled, queue_outside_hours=link.queue_outside_hours,
        exits_by_signal=link.exits_by_signal)
    audit.record(session, "replay.applied", user_id=user_id, subject=str(link_id),
                 sl=str(setting.sl), target=str(setting.target), tsl=str(setting.tsl))
