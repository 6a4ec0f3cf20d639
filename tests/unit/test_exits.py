"""Exit rules: levels, rounding, the trailing ratchet and the exit decision."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from ats_app.engine.exits.rules import (
    ExitDecision,
    ExitReason,
    ExitRules,
    PositionView,
    Side,
    effective_stop,
    evaluate_exit,
    initial_levels,
    open_position,
    ratchet_trailing_stop,
    update_peak,
)

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
TICK = D("0.05")
PAISA = D("0.01")


def rules(sl: str | None = None, target: str | None = None, tsl: str | None = None) -> ExitRules:
    return ExitRules(*(None if v is None else D(v) for v in (sl, target, tsl)))


def step(position: PositionView, price: D, exit_rules: ExitRules) -> PositionView:
    """What the monitor persists after a tick that did not exit."""
    peak = update_peak(position, price)
    stop = ratchet_trailing_stop(position, price, exit_rules)
    return dataclasses.replace(
        position,
        peak_price=position.peak_price if peak is None else peak,
        current_stop=position.current_stop if stop is None else stop,
    )


def walk(
    side: str, entry: str, exit_rules: ExitRules, prices: list[str], tick: D = TICK
) -> tuple[ExitDecision | None, PositionView]:
    """Feed prices through evaluate-then-persist until one exits."""
    position = open_position(side, D(entry), 75, exit_rules, tick)
    for price in map(D, prices):
        decision = evaluate_exit(position, price, NOW, exit_rules)
        if decision is not None:
            return decision, position
        position = step(position, price, exit_rules)
    return None, position


# --- Scenarios -----------------------------------------------------------------------------

SCENARIOS = [
    pytest.param("LONG", "100", rules(sl="5"), ["99", "97", "95"], PAISA,
                 ExitReason.STOP_LOSS, "95", "95", id="sl-hit-on-touch"),
    pytest.param("LONG", "100", rules(sl="5"), ["99", "95.05", "96"], PAISA,
                 None, None, None, id="sl-one-tick-above-holds"),
    pytest.param("LONG", "100", rules(sl="5"), ["101", "90"], PAISA,
                 ExitReason.STOP_LOSS, "95", "90", id="gap-through-stop"),
    pytest.param("LONG", "100", rules(sl="5", target="10"), ["105", "109.95", "110"], PAISA,
                 ExitReason.TARGET, "110", "110", id="target-hit-on-touch"),
    pytest.param("LONG", "100", rules(target="10"), ["104", "120"], PAISA,
                 ExitReason.TARGET, "110", "120", id="gap-through-target"),
    pytest.param("LONG", "100", rules(sl="5", tsl="2"), ["101", "102", "99.9"], PAISA,
                 ExitReason.TRAILING_STOP, "99.96", "99.9", id="trail-after-peak"),
    pytest.param("LONG", "100", rules(sl="5", tsl="2"), ["97.9"], PAISA,
                 ExitReason.TRAILING_STOP, "98", "97.9", id="trail-tighter-than-sl-from-entry"),
    pytest.param("LONG", "100", rules(sl="2", tsl="5"), ["99", "98"], PAISA,
                 ExitReason.STOP_LOSS, "98", "98", id="sl-tighter-than-trail"),
    pytest.param("LONG", "100", rules(tsl="5"), ["110", "105", "104.6", "104.5"], PAISA,
                 ExitReason.TRAILING_STOP, "104.5", "104.5", id="trail-never-loosens"),
    pytest.param("LONG", "100", rules(tsl="5"), ["94.99"], PAISA,
                 ExitReason.TRAILING_STOP, "95", "94.99", id="trail-only-from-entry"),
    pytest.param("LONG", "100", rules(sl="5", target="10", tsl="3"), ["104", "108", "104.76"],
                 TICK, ExitReason.TRAILING_STOP, "104.80", "104.76", id="trail-rounded-up"),
    pytest.param("LONG", "100", rules(), ["1", "1000"], PAISA,
                 None, None, None, id="no-rules-never-exit"),
    pytest.param("SHORT", "100", rules(sl="5"), ["103", "105"], PAISA,
                 ExitReason.STOP_LOSS, "105", "105", id="short-sl-hit"),
    pytest.param("SHORT", "100", rules(sl="5"), ["99", "112"], PAISA,
                 ExitReason.STOP_LOSS, "105", "112", id="short-gap-through-stop"),
    pytest.param("SHORT", "100", rules(target="10"), ["95", "90"], PAISA,
                 ExitReason.TARGET, "90", "90", id="short-target-hit"),
    pytest.param("SHORT", "100", rules(sl="5", tsl="2"), ["99", "98", "99.97"], PAISA,
                 ExitReason.TRAILING_STOP, "99.96", "99.97", id="short-trail-after-trough"),
    pytest.param("SHORT", "100", rules(tsl="5"), ["90", "94", "94.4", "94.5"], PAISA,
                 ExitReason.TRAILING_STOP, "94.5", "94.5", id="short-trail-never-loosens"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("side", "entry", "exit_rules", "prices", "tick", "reason", "trigger", "observed"),
    SCENARIOS,
)
def test_exit_scenarios(
    side: str,
    entry: str,
    exit_rules: ExitRules,
    prices: list[str],
    tick: D,
    reason: ExitReason | None,
    trigger: str | None,
    observed: str | None,
) -> None:
    decision, _ = walk(side, entry, exit_rules, prices, tick)
    if reason is None:
        assert decision is None
        return
    assert decision == ExitDecision(reason, D(trigger), D(observed), NOW)


def test_issue_example_records_the_peak() -> None:
    decision, position = walk("LONG", "100", rules(sl="5", tsl="2"), ["101", "102", "99.9"],
                              PAISA)  # fmt: skip
    assert decision is not None and decision.reason is ExitReason.TRAILING_STOP
    assert position.peak_price == D("102")
    assert position.current_stop == D("99.96")
    assert position.initial_stop == D("95.00")


def test_stop_wins_when_stop_and_target_hit_on_one_tick() -> None:
    # The trail has been ratcheted beyond the target; the price is falling back through it.
    position = PositionView(Side.LONG, D(100), 75, D(95), D(106), D(105), D(108), TICK)
    decision = evaluate_exit(position, D("105.5"), NOW, rules(sl="5", target="5"))
    assert decision == ExitDecision(ExitReason.TRAILING_STOP, D(106), D("105.5"), NOW)


def test_short_stop_wins_when_stop_and_target_hit_on_one_tick() -> None:
    position = PositionView(Side.SHORT, D(100), 75, D(105), D(94), D(95), D(92), TICK)
    decision = evaluate_exit(position, D("94.5"), NOW, rules(sl="5", target="5"))
    assert decision == ExitDecision(ExitReason.TRAILING_STOP, D(94), D("94.5"), NOW)


def test_exit_counts_a_trail_the_caller_has_not_persisted() -> None:
    # Peak 110 was persisted but the stop still says 95: the 5 % trail (104.50) must hold.
    position = PositionView(Side.LONG, D(100), 75, D(95), D(95), None, D(110), TICK)
    decision = evaluate_exit(position, D(104), NOW, rules(sl="5", tsl="5"))
    assert decision == ExitDecision(ExitReason.TRAILING_STOP, D("104.50"), D(104), NOW)


def test_stop_tightened_by_hand_reports_trailing_stop() -> None:
    position = PositionView(Side.LONG, D(100), 75, D(95), D(100), None, D(103), TICK)
    decision = evaluate_exit(position, D(100), NOW, rules(sl="5"))
    assert decision is not None and decision.reason is ExitReason.TRAILING_STOP


def test_evaluate_exit_does_not_change_the_position() -> None:
    position = open_position("LONG", D(100), 75, rules(sl="5", tsl="2"), TICK)
    before = dataclasses.replace(position)
    evaluate_exit(position, D(120), NOW, rules(sl="5", tsl="2"))
    assert position == before


def test_decision_carries_the_time_it_was_given() -> None:
    later = datetime(2030, 1, 1, tzinfo=UTC)
    position = open_position("LONG", D(100), 75, rules(sl="5"), TICK)
    decision = evaluate_exit(position, D(90), later, rules(sl="5"))
    assert decision is not None and decision.at == later


def test_naive_time_is_refused() -> None:
    position = open_position("LONG", D(100), 75, rules(sl="5"), TICK)
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate_exit(position, D(90), datetime(2026, 11, 24, 9, 30), rules(sl="5"))


@pytest.mark.parametrize("price", [D(0), D(-1), D("NaN")], ids=str)
def test_bad_price_is_refused(price: D) -> None:
    position = open_position("LONG", D(100), 75, rules(sl="5"), TICK)
    with pytest.raises(ValueError):
        evaluate_exit(position, price, NOW, rules(sl="5"))


def test_float_price_is_refused() -> None:
    position = open_position("LONG", D(100), 75, rules(sl="5"), TICK)
    with pytest.raises(TypeError):
        evaluate_exit(position, 90.0, NOW, rules(sl="5"))  # type: ignore[arg-type]


def test_exit_reason_values_match_positions_json() -> None:
    assert {r.value for r in ExitReason} == {
        "stop_loss", "target", "trailing_stop", "signal", "manual", "square_off", "kill_switch",
        "stop_loss_at_broker",
    }  # fmt: skip


# --- Levels and tick rounding --------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "entry", "exit_rules", "stop", "target"),
    [
        pytest.param("LONG", "200", rules("5", "10"), "190.00", "220.00", id="long-on-grid"),
        pytest.param("LONG", "100", rules("3.33", "7.77"), "96.70", "107.75",
                     id="long-stop-up-target-down"),
        pytest.param("SHORT", "100", rules("3.33", "7.77"), "103.30", "92.25",
                     id="short-stop-down-target-up"),
        pytest.param("LONG", "100.03", rules("0.01", "0.01"), "100.00", "100.05",
                     id="long-tiny-pct-one-tick-away"),
        pytest.param("SHORT", "100.03", rules("0.01", "0.01"), "100.05", "100.00",
                     id="short-tiny-pct-one-tick-away"),
        pytest.param("LONG", "100", rules(sl="5"), "95.00", None, id="no-target"),
        pytest.param("LONG", "100", rules(target="5"), None, "105.00", id="no-stop"),
    ],
)  # fmt: skip
def test_initial_levels_round_toward_the_entry(
    side: str, entry: str, exit_rules: ExitRules, stop: str | None, target: str | None
) -> None:
    expected = (None if stop is None else D(stop), None if target is None else D(target))
    assert initial_levels(side, D(entry), exit_rules, TICK) == expected


def test_initial_levels_are_on_the_tick_grid() -> None:
    stop, target = initial_levels("LONG", D("123.37"), rules("1.7", "2.9"), TICK)
    assert stop is not None and target is not None
    assert stop % TICK == 0 and target % TICK == 0


def test_open_position_applies_the_trail_from_entry() -> None:
    position = open_position("LONG", D(100), 75, rules(sl="5", target="10", tsl="2"), TICK)
    assert position == PositionView(
        Side.LONG, D(100), 75, D("95.00"), D("98.00"), D("110.00"), D(100), TICK
    )


def test_open_position_without_trail_keeps_the_stop_loss() -> None:
    position = open_position("SHORT", D(100), 75, rules(sl="5"), TICK)
    assert (position.initial_stop, position.current_stop) == (D("105.00"), D("105.00"))


# --- Peak and ratchet ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "price", "expected"),
    [
        pytest.param("LONG", "103", "103", id="long-new-high"),
        pytest.param("LONG", "102", None, id="long-equal"),
        pytest.param("LONG", "101", None, id="long-lower"),
        pytest.param("SHORT", "97", "97", id="short-new-low"),
        pytest.param("SHORT", "98", None, id="short-equal"),
        pytest.param("SHORT", "99", None, id="short-higher"),
    ],
)
def test_update_peak(side: str, price: str, expected: str | None) -> None:
    peak = D(102) if side == "LONG" else D(98)
    position = PositionView(Side(side), D(100), 75, None, None, None, peak, TICK)
    assert update_peak(position, D(price)) == (None if expected is None else D(expected))


def test_ratchet_tightens_on_a_new_peak() -> None:
    position = open_position("LONG", D(100), 75, rules(tsl="2"), TICK)
    assert ratchet_trailing_stop(position, D(110), rules(tsl="2")) == D("107.80")


def test_ratchet_rounds_the_trail_up_toward_the_peak() -> None:
    position = open_position("LONG", D(100), 75, rules(tsl="1"), TICK)
    # 101.35 x 0.99 = 100.3365 -> 100.35
    assert ratchet_trailing_stop(position, D("101.35"), rules(tsl="1")) == D("100.35")


@pytest.mark.parametrize("price", ["99", "100", "101.9", "102"])
@pytest.mark.parametrize("stop", ["100.00", "100.50"], ids=["at-trail", "tighter-by-hand"])
def test_ratchet_never_loosens(stop: str, price: str) -> None:
    # Peak 102 and a 2 % trail give 99.96 -> 100.00: no price short of a new peak moves it.
    position = PositionView(Side.LONG, D(100), 75, None, D(stop), None, D(102), TICK)
    assert ratchet_trailing_stop(position, D(price), rules(tsl="2")) is None


def test_ratchet_is_off_without_a_trailing_rule() -> None:
    position = open_position("LONG", D(100), 75, rules(sl="5"), TICK)
    assert ratchet_trailing_stop(position, D(200), rules(sl="5")) is None


def test_short_ratchet_moves_down_only() -> None:
    position = open_position("SHORT", D(100), 75, rules(tsl="2"), TICK)
    assert position.current_stop == D("102.00")
    assert ratchet_trailing_stop(position, D(90), rules(tsl="2")) == D("91.80")
    assert ratchet_trailing_stop(position, D(101), rules(tsl="2")) is None


def test_tiny_trail_stays_a_tick_below_the_peak() -> None:
    position = open_position("LONG", D(10), 75, rules(tsl="0.1"), TICK)
    assert position.current_stop == D("9.95")
    assert evaluate_exit(position, D(10), NOW, rules(tsl="0.1")) is None


def test_effective_stop_without_any_stop_is_none() -> None:
    position = open_position("LONG", D(100), 75, rules(target="5"), TICK)
    assert effective_stop(position, D(99), rules(target="5")) is None


# --- Properties over random price paths (seeded, so failures reproduce) --------------------


def _random_path(rng: random.Random, start: D, n: int) -> list[D]:
    price, path = start, []
    for _ in range(n):
        price = max(TICK, price + TICK * rng.randint(-12, 12))
        path.append(price)
    return path


@pytest.mark.parametrize("side", ["LONG", "SHORT"])
@pytest.mark.parametrize("seed", range(40))
def test_random_paths_keep_the_invariants(side: str, seed: int) -> None:
    rng = random.Random(seed)
    exit_rules = rules(sl=str(rng.randint(1, 20)), target=str(rng.randint(1, 40)),
                       tsl=rng.choice([None, "0.5", "1", "2.5", "7"]))  # fmt: skip
    position = open_position(side, D(100), 75, exit_rules, TICK)
    better = (lambda a, b: a > b) if side == "LONG" else (lambda a, b: a < b)
    for price in _random_path(rng, D(100), 300):
        decision = evaluate_exit(position, price, NOW, exit_rules)
        if decision is not None:
            assert decision.trigger_price is not None and decision.trigger_price % TICK == 0
            if decision.reason is ExitReason.TARGET:
                assert not better(decision.trigger_price, price)  # at or beyond the target
            else:
                assert not better(price, decision.trigger_price)  # never above a long stop
            return
        moved = step(position, price, exit_rules)
        assert not better(position.current_stop, moved.current_stop)  # never loosens
        assert not better(position.peak_price, moved.peak_price)
        assert better(moved.peak_price, moved.current_stop)  # stop stays behind the peak
        assert better(price, moved.current_stop)  # no exit means the price is above the stop
        position = moved


def test_falling_path_exits_on_first_price_at_or_below_the_stop() -> None:
    exit_rules = rules(sl="5", tsl="3")
    position = open_position("LONG", D(100), 75, exit_rules, TICK)
    path = [D(100) + TICK * i for i in range(0, 200, 7)]  # up to 109.80
    path += [path[-1] - TICK * i for i in range(1, 400)]
    for price in path:
        stop_before = effective_stop(position, price, exit_rules)
        decision = evaluate_exit(position, price, NOW, exit_rules)
        if decision is not None:
            assert stop_before is not None and price <= stop_before
            assert decision.trigger_price == D("106.55")  # 109.80 x 0.97 = 106.506 -> up
            return
        position = step(position, price, exit_rules)
    pytest.fail("the falling path never exited")


# --- Validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"stop_loss_pct": D(0)}, "stop_loss_pct", id="sl-zero"),
        pytest.param({"stop_loss_pct": D(-1)}, "stop_loss_pct", id="sl-negative"),
        pytest.param({"stop_loss_pct": D(100)}, "stop_loss_pct", id="sl-hundred"),
        pytest.param({"trailing_stop_pct": D(0)}, "trailing_stop_pct", id="tsl-zero"),
        pytest.param({"trailing_stop_pct": D(100)}, "trailing_stop_pct", id="tsl-hundred"),
        pytest.param({"target_pct": D(0)}, "target_pct", id="target-zero"),
        pytest.param({"target_pct": D("1000.01")}, "target_pct", id="target-over-1000"),
        pytest.param({"stop_loss_pct": D("NaN")}, "stop_loss_pct", id="sl-nan"),
        pytest.param({"target_pct": D("Infinity")}, "target_pct", id="target-infinite"),
    ],
)
def test_invalid_rules_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ExitRules(**kwargs)


def test_float_rule_is_refused() -> None:
    with pytest.raises(TypeError, match="stop_loss_pct"):
        ExitRules(stop_loss_pct=5.0)  # type: ignore[arg-type]


def test_boundary_rules_are_accepted() -> None:
    ExitRules(D("99.99"), D(1000), D("0.01"))


def test_rules_from_stored_floats_are_exact() -> None:
    assert ExitRules.from_settings(0.1, "10", None) == ExitRules(D("0.1"), D(10), None)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        pytest.param({"side": "BUY"}, ValueError, id="bad-side"),
        pytest.param({"quantity": 0}, ValueError, id="zero-quantity"),
        pytest.param({"entry_price": 100.0}, TypeError, id="float-entry"),
        pytest.param({"tick_size": D(0)}, ValueError, id="zero-tick"),
        pytest.param({"peak_price": D(99)}, ValueError, id="peak-below-long-entry"),
        pytest.param({"initial_stop": D(101)}, ValueError, id="stop-above-long-entry"),
        pytest.param({"current_stop": D(94)}, ValueError, id="current-looser-than-initial"),
        pytest.param({"current_stop": None}, ValueError, id="current-missing"),
        pytest.param({"target": D(99)}, ValueError, id="target-below-long-entry"),
    ],
)
def test_position_view_refuses_inconsistent_levels(change: dict, error: type) -> None:
    fields = {
        "side": "LONG",
        "entry_price": D(100),
        "quantity": 75,
        "initial_stop": D(95),
        "current_stop": D(95),
        "target": D(110),
        "peak_price": D(100),
        "tick_size": TICK,
    }
    PositionView(**fields)  # the base is valid, so the change alone is refused
    with pytest.raises(error):
        PositionView(**(fields | change))


def test_position_view_accepts_side_as_string() -> None:
    position = PositionView("SHORT", D(100), 1, None, None, None, D(100), TICK)  # type: ignore[arg-type]
    assert position.side is Side.SHORT
