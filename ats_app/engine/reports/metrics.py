"""Trade statistics for reports and replays. Pure: Decimal rupees in, figures out.

A trade's net P&L is its gross P&L less its estimated charges (the paper broker's model,
`broker.charges`, on both orders). A win is a trade whose net P&L is above zero. Drawdown is
the largest fall of cumulative net P&L from a running peak that starts at 0, in rupees.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from ats_app.engine.broker.base import Side
from ats_app.engine.broker.charges import Segment, estimate
from ats_app.engine.core.clock import ist
from ats_app.engine.reports.replay_rules import Exit, Setting

__all__ = [
    "ClosedTrade",
    "Summary",
    "daily_pnl",
    "equity_curve",
    "max_drawdown",
    "round_trip_charges",
    "setting_result",
    "summarize",
]

ZERO = Decimal(0)
PAISA = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    closed_at: datetime  # aware
    gross: Decimal  # (exit - entry) x quantity
    charges: Decimal
    reason: str

    @property
    def net(self) -> Decimal:
        return self.gross - self.charges


@dataclass(frozen=True)
class Summary:
    trades: int
    wins: int
    losses: int
    win_rate: Decimal | None  # percent; None with no trades
    avg_win: Decimal | None  # net, rupees
    avg_loss: Decimal | None  # net, rupees (negative)
    profit_factor: Decimal | None  # net won / net lost; None with no losing trade
    expectancy: Decimal | None  # average net P&L per trade
    max_drawdown: Decimal
    charges: Decimal
    gross_pnl: Decimal
    net_pnl: Decimal
    exit_reasons: dict[str, int] = field(default_factory=dict)


def max_drawdown(pnls: Iterable[Decimal]) -> Decimal:
    """Largest fall of the running sum from its peak (the peak starts at 0)."""
    equity = peak = worst = ZERO
    for p in pnls:
        equity += p
        if equity > peak:
            peak = equity
        elif peak - equity > worst:
            worst = peak - equity
    return worst


def _q(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(PAISA)


def summarize(trades: Sequence[ClosedTrade]) -> Summary:
    """The figures of closed trades, taken in the order given (for the drawdown)."""
    nets = [t.net for t in trades]
    won = [n for n in nets if n > 0]
    lost = [n for n in nets if n <= 0]
    n = len(nets)
    lost_sum = -sum(lost, ZERO)
    return Summary(
        trades=n,
        wins=len(won),
        losses=len(lost),
        win_rate=_q(Decimal(100) * len(won) / n) if n else None,
        avg_win=_q(sum(won, ZERO) / len(won)) if won else None,
        avg_loss=_q(sum(lost, ZERO) / len(lost)) if lost else None,
        profit_factor=_q(sum(won, ZERO) / lost_sum) if lost_sum > 0 else None,
        expectancy=_q(sum(nets, ZERO) / n) if n else None,
        max_drawdown=max_drawdown(nets).quantize(PAISA),
        charges=sum((t.charges for t in trades), ZERO).quantize(PAISA),
        gross_pnl=sum((t.gross for t in trades), ZERO).quantize(PAISA),
        net_pnl=sum(nets, ZERO).quantize(PAISA),
        exit_reasons=dict(Counter(t.reason or "unknown" for t in trades)),
    )


def equity_curve(trades: Sequence[ClosedTrade]) -> list[tuple[datetime, Decimal]]:
    """Cumulative net P&L after each trade, at its close."""
    out: list[tuple[datetime, Decimal]] = []
    equity = ZERO
    for t in trades:
        equity += t.net
        out.append((t.closed_at, equity.quantize(PAISA)))
    return out


def daily_pnl(trades: Iterable[ClosedTrade]) -> list[tuple[date, Decimal]]:
    """Net P&L per IST day of closing, oldest first."""
    days: dict[date, Decimal] = {}
    for t in trades:
        day = ist(t.closed_at).date()
        days[day] = days.get(day, ZERO) + t.net
    return [(d, days[d].quantize(PAISA)) for d in sorted(days)]


def round_trip_charges(segment: Segment, entry: Decimal, exit_price: Decimal,
                       quantity: int) -> Decimal:
    """Charges of a long trade's buy and sell, as the paper broker estimates each order."""
    if quantity <= 0:
        return ZERO
    return (estimate(segment, Side.BUY, entry, quantity).total
            + estimate(segment, Side.SELL, exit_price, quantity).total)


def setting_result(setting: Setting, exits: Sequence[Exit], quantities: Sequence[int],
                   segments: Sequence[Segment]) -> dict[str, object]:
    """One grid point as `replay --json` prints it (numbers as JSON numbers); each trade
    charged for its own segment (options, futures, equity intraday)."""
    closed = [
        ClosedTrade(e.exit_time, (e.exit_price - e.entry_price) * q,
                    round_trip_charges(seg, e.entry_price, e.exit_price, q), e.reason)
        for e, q, seg in zip(exits, quantities, segments, strict=True)
    ]
    s = summarize(closed)
    return {
        "sl": float(setting.sl),
        "target": float(setting.target),
        "tsl": float(setting.tsl),
        "trades": s.trades,
        "wins": s.wins,
        "gross_pnl": float(s.gross_pnl),
        "net_pnl": float(s.net_pnl),
        "max_drawdown": float(s.max_drawdown),
        "exits": [
            {
                "entry_time": ist(e.entry_time).isoformat(),
                "entry_price": float(e.entry_price),
                "exit_time": ist(e.exit_time).isoformat(),
                "exit_price": float(e.exit_price),
                "reason": e.reason,
            }
            for e in exits
        ],
    }
