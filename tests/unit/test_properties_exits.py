"""Property tests (Hypothesis) of the exit rules (`exits.rules`, pure) and the monitor's
per-tick tracking of them (`exits.tracker`): on any price path, from any entry, tick size and
link settings (each level a percentage or off), an exit fires only where its level says and
at most once, and the stop only ever tightens, staying behind the peak."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ats_app.engine.core.money import to_paise
from ats_app.engine.exits.rules import (
    ExitDecision,
    ExitReason,
    ExitRules,
    PositionView,
    Side,
    effective_stop,
    evaluate_exit,
    open_position,
    ratchet_trailing_stop,
    update_peak,
)
from ats_app.engine.exits.tracker import Tracked, on_price
from ats_app.engine.exits.watchlist import tracked_from
from ats_app.engine.store.models import Position
from ats_app.engine.tenants.webhooks import validate_pct

# The same examples every run (CI reproduces what a developer saw), none stored in the repo.
PROPERTY = settings(
    max_examples=300, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
NOW = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)
TICKS = [Decimal(t) for t in ("0.05", "0.01", "0.10", "0.25", "1", "5")]
OFF = st.sampled_from([None, 0, "0", "off", " OFF ", ""])  # every way a link turns a level off


def _pct(upper: int) -> st.SearchStrategy[Any]:
    """A level as the link form or CLI takes it, off or on (tiny, ordinary or extreme)."""
    on = st.one_of(st.decimals(Decimal("0.01"), Decimal(upper), places=2).map(str),
                   st.sampled_from(["0.01", "0.5", "1", "2.5", "5", "10", str(upper)]),
                   st.floats(0.001, upper))
    return st.one_of(OFF, on)


def link_rules(sl: Any, target: Any, tsl: Any) -> ExitRules:
    """The rules a position opens with, from a link's settings: `validate_pct` stores each
    (None when off), `ExitRules.from_settings` reads them back."""
    return ExitRules.from_settings(validate_pct(sl, "stop_loss_pct", 99),
                                   validate_pct(target, "target_pct", 1000),
                                   validate_pct(tsl, "trailing_stop_pct", 99))


RULES = st.builds(link_rules, _pct(99), _pct(1000), _pct(99))


@dataclasses.dataclass(frozen=True)
class Case:
    side: Side
    tick: Decimal
    entry: int  # paise; fills average off the tick grid too
    rules: ExitRules
    path: list[int]  # paise, on the tick grid (last traded prices)

    @property
    def tick_paise(self) -> int:
        return int(self.tick * 100)


# Mostly small moves, sometimes a gap of hundreds of ticks (an open, a circuit). Every tick
# is checked along the way, so a long path covers the short ones (its prefixes).
MOVES = st.lists(st.one_of(st.integers(-12, 12), st.integers(-600, 600)),
                 min_size=30, max_size=120)


@st.composite
def cases(draw: st.DrawFn, rules: st.SearchStrategy[ExitRules] = RULES,
          moves: st.SearchStrategy[list[int]] = MOVES) -> Case:
    tick = draw(st.sampled_from(TICKS))
    step = int(tick * 100)
    on_grid = draw(st.integers(1, 40_000)) * step
    entry = draw(st.one_of(st.just(on_grid), st.integers(1, 4_000_000)))
    price, path = max(step, entry // step * step), []
    for move in draw(moves):
        price = max(step, price + move * step)
        path.append(price)
    return Case(draw(st.sampled_from(Side)), tick, entry, draw(rules), path)


def better(side: Side, a: Decimal, b: Decimal) -> bool:
    """Price `a` is strictly more favourable than `b` for this side."""
    return a > b if side is Side.LONG else a < b


def tick_beyond(ref: Decimal, tick: Decimal, up: bool) -> Decimal:
    """The first grid price strictly above (or below) `ref`: where a level is kept when its
    percentage would put it closer to its reference (`rules._level_above` / `_below`)."""
    if up:
        return (ref / tick).to_integral_value(rounding=ROUND_FLOOR) * tick + tick
    return (ref / tick).to_integral_value(rounding=ROUND_CEILING) * tick - tick


def stop_no_later(side: Side, stop: Decimal, exact: Decimal, ref: Decimal, tick: Decimal) -> bool:
    """A stop fires no later than its exact level, unless it is kept a tick behind `ref`."""
    return not better(side, exact, stop) or stop == tick_beyond(ref, tick, up=side is Side.SHORT)


def rupees(paise: int) -> Decimal:
    return Decimal(paise) / 100


def persist(view: PositionView, price: Decimal, rules: ExitRules) -> PositionView:
    """What the monitor keeps after a tick that did not exit."""
    peak = update_peak(view, price)
    stop = ratchet_trailing_stop(view, price, rules)
    return dataclasses.replace(view, peak_price=view.peak_price if peak is None else peak,
                               current_stop=view.current_stop if stop is None else stop)


def walk(case: Case) -> tuple[list[PositionView], tuple[int, ExitDecision] | None]:
    """The rules along the path until the first exit: the view before each tick, and
    (index, decision) of the exit if one fired."""
    view = open_position(case.side, rupees(case.entry), 75, case.rules, case.tick)
    views = []
    for i, paise in enumerate(case.path):
        views.append(view)
        decision = evaluate_exit(view, rupees(paise), NOW, case.rules)
        if decision is not None:
            return views, (i, decision)
        view = persist(view, rupees(paise), case.rules)
    views.append(view)
    return views, None


# --- The rules ------------------------------------------------------------------------------


@PROPERTY
@given(cases())
def test_an_exit_fires_only_where_its_level_is_crossed(case: Case) -> None:
    views, exit_ = walk(case)
    side, rules = case.side, case.rules
    for i in range(len(case.path) if exit_ is None else exit_[0]):
        # No exit: the price is strictly inside the active stop and short of the target.
        view, price = views[i], rupees(case.path[i])
        stop = effective_stop(view, price, rules)
        assert stop is None or better(side, price, stop), (price, stop)
        assert view.target is None or better(side, view.target, price), (price, view.target)
    if exit_ is None:
        return
    i, decision = exit_
    view, price = views[i], rupees(case.path[i])
    assert decision.observed_price == price and decision.at == NOW
    assert decision.trigger_price is not None
    if decision.reason is ExitReason.TARGET:
        assert rules.target_pct is not None and decision.trigger_price == view.target
        assert not better(side, decision.trigger_price, price)  # at or beyond the target
    else:
        assert decision.reason in (ExitReason.STOP_LOSS, ExitReason.TRAILING_STOP)
        assert decision.trigger_price == effective_stop(view, price, rules)
        assert not better(side, price, decision.trigger_price)  # at or through the stop
        if decision.reason is ExitReason.STOP_LOSS:
            assert rules.stop_loss_pct is not None
            assert decision.trigger_price == view.initial_stop
        else:
            assert rules.trailing_stop_pct is not None
            assert view.initial_stop is None or better(side, decision.trigger_price,
                                                       view.initial_stop)


@PROPERTY
@given(cases())
def test_the_stop_only_tightens_and_stays_behind_the_peak(case: Case) -> None:
    views, _ = walk(case)
    side, tsl = case.side, case.rules.trailing_stop_pct
    for before, after in pairwise(views):
        assert not better(side, before.peak_price, after.peak_price)  # the peak never retreats
        if before.current_stop is not None:  # the stop never loosens, nor goes away
            assert after.current_stop is not None
            assert not better(side, before.current_stop, after.current_stop)
    for view in views:
        stop = view.current_stop
        assert stop is None or better(side, view.peak_price, stop)  # behind the peak
        assert stop is None or stop % case.tick == 0  # on the grid
        if tsl is not None:
            # The trail keeps up: never further from the peak than the percentage says.
            assert stop is not None
            exact = view.peak_price * (1 - tsl / 100 if side is Side.LONG else 1 + tsl / 100)
            assert stop_no_later(side, stop, exact, view.peak_price, case.tick), (view, exact)


@pytest.mark.parametrize("level", ["stop_loss_pct", "target_pct", "trailing_stop_pct"])
@settings(PROPERTY, max_examples=150)
@given(data=st.data())
def test_a_level_turned_off_never_fires(level: str, data: st.DataObject) -> None:
    levels = {"stop_loss_pct": _pct(99), "target_pct": _pct(1000), "trailing_stop_pct": _pct(99)}
    levels[level] = OFF
    rules = st.builds(link_rules, levels["stop_loss_pct"], levels["target_pct"],
                      levels["trailing_stop_pct"])
    case = data.draw(cases(rules))
    assert getattr(case.rules, level) is None
    view = open_position(case.side, rupees(case.entry), 75, case.rules, case.tick)
    if level == "stop_loss_pct":
        assert view.initial_stop is None
    if level == "target_pct":
        assert view.target is None
    never = {"stop_loss_pct": ExitReason.STOP_LOSS, "target_pct": ExitReason.TARGET,
             "trailing_stop_pct": ExitReason.TRAILING_STOP}[level]
    _, exit_ = walk(case)
    assert exit_ is None or exit_[1].reason is not never, exit_
    if case.rules == ExitRules():  # every level off: the alerts send the exits
        assert exit_ is None and view.current_stop is None


@PROPERTY
@given(cases(moves=st.just([])))
def test_initial_levels_round_toward_the_entry_on_the_grid(case: Case) -> None:
    side, rules, tick, entry = case.side, case.rules, case.tick, rupees(case.entry)
    view = open_position(side, entry, 75, rules, tick)
    sign = 1 if side is Side.LONG else -1
    if rules.stop_loss_pct is not None:
        stop = view.initial_stop
        assert stop is not None and stop % tick == 0 and better(side, entry, stop)
        exact = entry * (1 - sign * rules.stop_loss_pct / 100)
        assert stop_no_later(side, stop, exact, entry, tick), (stop, exact)
    if rules.target_pct is not None:
        target = view.target
        assert target is not None and target % tick == 0 and better(side, target, entry)
        exact = entry * (1 + sign * rules.target_pct / 100)
        # No later than the exact level, unless kept a tick beyond the entry.
        kept = tick_beyond(entry, tick, up=side is Side.LONG)
        assert not better(side, target, exact) or target == kept, (target, exact)


# --- The monitor's tracking ------------------------------------------------------------------


def tracked(case: Case) -> Tracked:
    """The monitor's view of the position as it is stored when opened (`positions`)."""
    view = open_position(case.side, rupees(case.entry), 75, case.rules, case.tick)
    tsl = case.rules.trailing_stop_pct
    return tracked_from(Position(
        id=1, user_id=1, exchange="NFO", symbol="X", symbol_token="1", side=case.side.value,
        quantity=75, tick_size_paise=case.tick_paise, entry_price_paise=case.entry,
        initial_stop_paise=to_paise(view.initial_stop), stop_paise=to_paise(view.current_stop),
        target_paise=to_paise(view.target), peak_price_paise=to_paise(view.peak_price),
        trailing_stop_pct=None if tsl is None else float(tsl), status="OPEN"))


def monitor(t: Tracked, path: list[int]) -> list[tuple[int, ExitDecision]]:
    """The monitor's tick loop for one position: a decision marks it EXITING (`_exit`), and
    the ticks go on coming."""
    decisions = []
    for i, paise in enumerate(path):
        peak, stop = t.peak, t.stop
        changed, decision = on_price(t, paise, NOW)
        assert changed == ((t.peak, t.stop) != (peak, stop))  # persisted exactly when moved
        if decision is not None:
            decisions.append((i, decision))
            t.state = "EXITING"
    return decisions


@PROPERTY
@given(cases(), st.integers(1, 3))
def test_the_monitor_exits_a_position_at_most_once(case: Case, rounds: int) -> None:
    t = tracked(case)
    decisions = monitor(t, case.path * rounds)  # the same prices again: still one exit
    assert len(decisions) <= 1, decisions
    if decisions:
        trail = (t.peak, t.stop)
        assert monitor(t, case.path) == [] and (t.peak, t.stop) == trail  # EXITING: untouched


@PROPERTY
@given(cases())
def test_the_fast_path_agrees_with_the_rules(case: Case) -> None:
    """The tracker's integer fast path skips work only: the same exit on the same tick, and
    the same peak and stop persisted after every tick, as the rules in Decimal."""
    views, exit_ = walk(case)
    t = tracked(case)
    decisions = monitor(t, case.path)
    assert decisions == ([] if exit_ is None else [exit_])
    t = tracked(case)
    for view, paise in zip(views, case.path, strict=False):
        assert (t.peak, t.stop) == (to_paise(view.peak_price), to_paise(view.current_stop))
        on_price(t, paise, NOW)
