"""The order state machine: the whole table, the named paths through it, fill arithmetic."""

from __future__ import annotations

from collections import deque
from decimal import Decimal

import pytest

from ats_app.engine.core.fsm import (
    TRANSITIONS,
    InvalidTransition,
    OrderEvent,
    OrderStatus,
    apply,
    apply_fill,
    is_terminal,
    is_working,
    needs_reconciliation,
)

S = OrderStatus
E = OrderEvent

# The specification, written out independently of the module: status event -> next status.
EXPECTED_TABLE = """
CREATED          SUBMIT              SUBMITTING
CREATED          FAIL                FAILED
SUBMITTING       FAIL                FAILED
SUBMITTING       TIMEOUT             UNKNOWN
SUBMITTING       ACCEPT              OPEN
SUBMITTING       TRIGGER             TRIGGER_PENDING
SUBMITTING       PARTIAL_FILL        PARTIALLY_FILLED
SUBMITTING       FILL                FILLED
SUBMITTING       REJECT              REJECTED
SUBMITTING       CANCEL              CANCELLED
UNKNOWN          RECONCILE_FOUND     OPEN
UNKNOWN          RECONCILE_NOT_FOUND FAILED
UNKNOWN          ACCEPT              OPEN
UNKNOWN          TRIGGER             TRIGGER_PENDING
UNKNOWN          PARTIAL_FILL        PARTIALLY_FILLED
UNKNOWN          FILL                FILLED
UNKNOWN          REJECT              REJECTED
UNKNOWN          CANCEL              CANCELLED
OPEN             ACCEPT              OPEN
OPEN             TRIGGER             TRIGGER_PENDING
OPEN             PARTIAL_FILL        PARTIALLY_FILLED
OPEN             FILL                FILLED
OPEN             CANCEL_REQUEST      CANCEL_PENDING
OPEN             CANCEL              CANCELLED
OPEN             REJECT              REJECTED
TRIGGER_PENDING  TRIGGER             TRIGGER_PENDING
TRIGGER_PENDING  ACCEPT              OPEN
TRIGGER_PENDING  PARTIAL_FILL        PARTIALLY_FILLED
TRIGGER_PENDING  FILL                FILLED
TRIGGER_PENDING  CANCEL_REQUEST      CANCEL_PENDING
TRIGGER_PENDING  CANCEL              CANCELLED
TRIGGER_PENDING  REJECT              REJECTED
PARTIALLY_FILLED PARTIAL_FILL        PARTIALLY_FILLED
PARTIALLY_FILLED ACCEPT              PARTIALLY_FILLED
PARTIALLY_FILLED FILL                FILLED
PARTIALLY_FILLED CANCEL_REQUEST      CANCEL_PENDING
PARTIALLY_FILLED CANCEL              CANCELLED
CANCEL_PENDING   CANCEL_REQUEST      CANCEL_PENDING
CANCEL_PENDING   ACCEPT              CANCEL_PENDING
CANCEL_PENDING   CANCEL              CANCELLED
CANCEL_PENDING   CANCEL_REJECT       OPEN
CANCEL_PENDING   PARTIAL_FILL        CANCEL_PENDING
CANCEL_PENDING   FILL                FILLED
"""


def _expected() -> dict[tuple[OrderStatus, OrderEvent], OrderStatus]:
    rows = (line.split() for line in EXPECTED_TABLE.strip().splitlines())
    return {(S[status], E[event]): S[to] for status, event, to in rows}


EXPECTED = _expected()
ALL_PAIRS = [(status, event) for status in S for event in E]


def run(*events: OrderEvent, start: OrderStatus = S.CREATED) -> OrderStatus:
    status = start
    for event in events:
        status = apply(status, event)
    return status


def test_status_values_are_exactly_the_stored_strings() -> None:
    assert [s.value for s in S] == [
        "CREATED", "SUBMITTING", "UNKNOWN", "OPEN", "TRIGGER_PENDING", "PARTIALLY_FILLED",
        "FILLED", "CANCEL_PENDING", "CANCELLED", "REJECTED", "FAILED",
    ]  # fmt: skip
    assert all(s.value == s.name and len(s.value) <= 20 for s in S)  # orders.status is 20 wide


def test_event_values_equal_their_names() -> None:
    assert all(e.value == e.name for e in E)


def test_module_table_is_the_specified_table() -> None:
    assert TRANSITIONS == EXPECTED


@pytest.mark.parametrize(("status", "event"), ALL_PAIRS, ids=lambda v: v.value)
def test_every_status_event_pair_follows_the_table_or_raises(
    status: OrderStatus, event: OrderEvent
) -> None:
    if (status, event) in EXPECTED:
        assert apply(status, event) is EXPECTED[(status, event)]
    else:
        with pytest.raises(InvalidTransition) as info:
            apply(status, event)
        assert info.value.status is status
        assert info.value.event is event
        assert str(info.value) == f"{status} -> {info.value.target} via {event}"


def test_invalid_transition_message_names_from_to_and_event() -> None:
    with pytest.raises(InvalidTransition, match=r"^FILLED -> CANCELLED via CANCEL$"):
        apply(S.FILLED, E.CANCEL)


def test_apply_accepts_the_strings_the_database_stores() -> None:
    assert apply("CREATED", "SUBMIT") is S.SUBMITTING  # type: ignore[arg-type]


def test_apply_rejects_an_unknown_status_string() -> None:
    with pytest.raises(ValueError):
        apply("NEW", E.SUBMIT)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [s for s in S if is_terminal(s)], ids=str)
def test_terminal_statuses_have_no_way_out(status: OrderStatus) -> None:
    assert not [pair for pair in TRANSITIONS if pair[0] is status]


def test_terminal_and_working_sets() -> None:
    assert {s for s in S if is_terminal(s)} == {S.FILLED, S.CANCELLED, S.REJECTED, S.FAILED}
    assert {s for s in S if is_working(s)} == {
        S.OPEN, S.TRIGGER_PENDING, S.PARTIALLY_FILLED, S.CANCEL_PENDING,
    }  # fmt: skip
    assert {s for s in S if needs_reconciliation(s)} == {S.SUBMITTING, S.UNKNOWN}


def test_every_status_is_in_exactly_one_phase() -> None:
    for status in S:
        phases = [is_terminal(status), is_working(status), needs_reconciliation(status)]
        assert sum(phases) == (0 if status is S.CREATED else 1), status


def _reachable(start: OrderStatus) -> set[OrderStatus]:
    seen, todo = {start}, deque([start])
    while todo:
        here = todo.popleft()
        for (status, _), to in TRANSITIONS.items():
            if status is here and to not in seen:
                seen.add(to)
                todo.append(to)
    return seen


def test_every_status_is_reachable_from_created() -> None:
    assert _reachable(S.CREATED) == set(S)


@pytest.mark.parametrize("status", [s for s in S if not is_terminal(s)], ids=str)
def test_every_live_status_can_still_end(status: OrderStatus) -> None:
    assert any(is_terminal(s) for s in _reachable(status))


# --- Normal paths -------------------------------------------------------------------------


def test_market_order_accepted_then_filled() -> None:
    assert run(E.SUBMIT, E.ACCEPT, E.FILL) is S.FILLED


def test_refused_before_sending_fails_without_submitting() -> None:
    assert run(E.FAIL) is S.FAILED


def test_broker_rejects_on_send() -> None:
    assert run(E.SUBMIT, E.REJECT) is S.REJECTED


def test_rms_rejects_after_returning_an_order_id() -> None:
    assert run(E.SUBMIT, E.ACCEPT, E.REJECT) is S.REJECTED


def test_stop_order_waits_for_trigger_then_fills() -> None:
    assert run(E.SUBMIT, E.ACCEPT, E.TRIGGER, E.TRIGGER, E.ACCEPT, E.FILL) is S.FILLED


def test_repeated_open_reports_keep_the_order_open() -> None:
    assert run(E.SUBMIT, E.ACCEPT, E.ACCEPT, E.ACCEPT) is S.OPEN


def test_socket_fill_before_rest_answer_then_late_accept_is_stale() -> None:
    assert run(E.SUBMIT, E.FILL) is S.FILLED
    with pytest.raises(InvalidTransition):
        apply(S.FILLED, E.ACCEPT)


# --- Unknown outcome and reconciliation ----------------------------------------------------


def test_timeout_makes_the_outcome_unknown() -> None:
    assert run(E.SUBMIT, E.TIMEOUT) is S.UNKNOWN


@pytest.mark.parametrize("status", [S.SUBMITTING, S.UNKNOWN], ids=str)
def test_order_in_doubt_cannot_be_submitted_again(status: OrderStatus) -> None:
    with pytest.raises(InvalidTransition):
        apply(status, E.SUBMIT)


def test_unknown_found_in_order_book_filled() -> None:
    assert run(E.SUBMIT, E.TIMEOUT, E.RECONCILE_FOUND, E.FILL) is S.FILLED


def test_unknown_found_in_order_book_rejected() -> None:
    assert run(E.SUBMIT, E.TIMEOUT, E.RECONCILE_FOUND, E.REJECT) is S.REJECTED


def test_unknown_not_in_order_book_failed() -> None:
    assert run(E.SUBMIT, E.TIMEOUT, E.RECONCILE_NOT_FOUND) is S.FAILED


def test_unknown_resolved_by_order_update_socket() -> None:
    assert run(E.SUBMIT, E.TIMEOUT, E.ACCEPT) is S.OPEN


def test_reconciliation_only_applies_to_an_unknown_order() -> None:
    with pytest.raises(InvalidTransition):
        apply(S.OPEN, E.RECONCILE_FOUND)
    with pytest.raises(InvalidTransition):
        apply(S.SUBMITTING, E.RECONCILE_NOT_FOUND)


# --- Partial fills and cancels -------------------------------------------------------------


def test_partial_fills_then_complete() -> None:
    assert run(E.SUBMIT, E.ACCEPT, E.PARTIAL_FILL, E.ACCEPT, E.PARTIAL_FILL, E.FILL) is S.FILLED


def test_partial_fill_then_rest_cancelled() -> None:
    assert run(E.SUBMIT, E.ACCEPT, E.PARTIAL_FILL, E.CANCEL_REQUEST, E.CANCEL) is S.CANCELLED


def test_cancel_requested_and_confirmed() -> None:
    assert run(E.SUBMIT, E.ACCEPT, E.CANCEL_REQUEST, E.CANCEL) is S.CANCELLED


def test_fill_arriving_after_cancel_request_wins() -> None:
    assert run(E.SUBMIT, E.ACCEPT, E.CANCEL_REQUEST, E.FILL) is S.FILLED


def test_partial_fill_during_cancel_keeps_cancel_pending() -> None:
    assert run(E.SUBMIT, E.ACCEPT, E.CANCEL_REQUEST, E.PARTIAL_FILL) is S.CANCEL_PENDING


def test_refused_cancel_returns_the_order_to_working() -> None:
    assert run(E.SUBMIT, E.ACCEPT, E.CANCEL_REQUEST, E.CANCEL_REJECT) is S.OPEN


def test_cancel_after_fill_is_invalid() -> None:
    with pytest.raises(InvalidTransition):
        run(E.SUBMIT, E.ACCEPT, E.FILL, E.CANCEL_REQUEST)


def test_an_unsent_order_cannot_be_cancelled_at_the_broker() -> None:
    with pytest.raises(InvalidTransition):
        apply(S.CREATED, E.CANCEL_REQUEST)


# --- Fill accumulation ---------------------------------------------------------------------


def test_first_fill_sets_quantity_and_price() -> None:
    assert apply_fill(0, Decimal(0), 75, Decimal("120.50")) == (75, Decimal("120.5000"))


def test_later_fill_gives_the_volume_weighted_average() -> None:
    assert apply_fill(75, Decimal("100"), 25, Decimal("104")) == (100, Decimal("101.0000"))


def test_average_is_rounded_to_four_places() -> None:
    assert apply_fill(10, Decimal("100.5"), 20, Decimal("101")) == (30, Decimal("100.8333"))


def test_fills_accumulate_in_sequence() -> None:
    qty, avg = 0, Decimal(0)
    for fill_qty, price in [(65, "10.05"), (65, "10.10"), (130, "10.20")]:
        qty, avg = apply_fill(qty, avg, fill_qty, Decimal(price))
    assert (qty, avg) == (260, Decimal("10.1375"))


@pytest.mark.parametrize(
    ("args", "error"),
    [
        pytest.param((0, Decimal(0), 0, Decimal(10)), ValueError, id="zero-fill"),
        pytest.param((0, Decimal(0), -5, Decimal(10)), ValueError, id="negative-fill"),
        pytest.param((-1, Decimal(0), 5, Decimal(10)), ValueError, id="negative-filled"),
        pytest.param((0, Decimal(0), 5, Decimal(0)), ValueError, id="zero-price"),
        pytest.param((5, Decimal(0), 5, Decimal(10)), ValueError, id="filled-without-average"),
        pytest.param((0, Decimal(0), 5, 10.5), TypeError, id="float-price"),
        pytest.param((0, Decimal(0), 5, Decimal("NaN")), ValueError, id="nan-price"),
        pytest.param((0, Decimal(0), 5.0, Decimal(10)), TypeError, id="float-qty"),
        pytest.param((0, Decimal(0), True, Decimal(10)), TypeError, id="bool-qty"),
    ],
)
def test_apply_fill_refuses_bad_input(args: tuple, error: type[Exception]) -> None:
    with pytest.raises(error):
        apply_fill(*args)
