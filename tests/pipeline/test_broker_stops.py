"""Stops resting at the broker (a link's "Stop at broker"), against the SmartAPI simulator
through the official SDK: placed after the entry fills, closing the position while nothing of
ours runs, cancelled before any other exit, never a second sell."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from sqlmodel import select

from ats_app.engine.broker.prices import QUOTE_CACHE_S
from ats_app.engine.execution import broker_stops
from ats_app.engine.execution.exit_order import exit_position
from ats_app.engine.exits.claims import claim_for_exit
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import AuditEvent, Order, Position, WebhookLink, utcnow
from ats_app.engine.store.queueing import enqueue_broker_stop_sync
from ats_app.simulator.server import ServerThread
from tests.pipeline.test_pipeline import CLIENT, _post, _run_burst_worker

# PostgreSQL, the deployed database: each case drives the simulator through real worker
# processes (~15 s), and nothing here differs by database.
pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


def _stop_at_broker(link_name: str = "live") -> None:
    with session_scope() as s:
        link = s.exec(select(WebhookLink).where(WebhookLink.name == link_name)).one()
        link.broker_stop = True
        s.add(link)


def _position() -> Position:
    with session_scope() as s:
        (position,) = s.exec(select(Position)).all()
    return position


def _orders(purpose: str) -> list[Order]:
    with session_scope() as s:
        return list(s.exec(select(Order).where(Order.purpose == purpose)
                           .order_by(Order.id)).all())  # type: ignore[arg-type]


def _sim_sells(sim: ServerThread) -> list[dict]:
    rows = httpx.get(f"{sim.base_url}/sim/orders", params={"clientcode": CLIENT}).json()
    return [o for o in rows["orders"] if o["transactiontype"] == "SELL"]


def _price(sim: ServerThread, token: str, ltp: float) -> None:
    httpx.post(f"{sim.base_url}/sim/price", json={"token": token, "ltp": ltp}).raise_for_status()


def _until(check, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _entered(world: dict) -> tuple[Position, Order]:
    """An entry on the live link with Stop at broker: the position and its resting stop."""
    _stop_at_broker()
    _post(world["live"], id="bs-entry")
    _run_burst_worker()  # the entry, then the stop job it enqueues
    position = _position()
    (stop,) = _orders("STOP")
    # the price held where it filled: the simulator's own drift must not reach the stop
    _price(world["sim"], position.symbol_token, position.entry_price_paise / 100)
    return position, stop


def test_the_stop_rests_at_the_broker_and_closes_the_position_while_we_are_down(
        world: dict) -> None:
    sim = world["sim"]
    position, stop = _entered(world)
    assert position.status == "OPEN" and position.broker_stop
    tick = position.tick_size_paise
    # the stop sits at the position's stop (on the tick grid), its limit a band under it
    assert stop.trigger_paise is not None and stop.price_paise is not None
    assert position.stop_paise - tick < stop.trigger_paise <= position.stop_paise
    assert stop.trigger_paise % tick == 0 and stop.price_paise % tick == 0
    assert stop.trigger_paise * 0.94 <= stop.price_paise < stop.trigger_paise
    assert stop.side == "SELL" and stop.quantity == position.quantity
    assert stop.status in ("OPEN", "TRIGGER_PENDING") and stop.broker_order_id
    (resting,) = _sim_sells(sim)
    assert resting["status"] == "trigger pending" and resting["ordertag"] == stop.client_order_id

    # Nothing of ours runs now (the burst worker is gone, no monitor, no stream): the price
    # falls through the stop and the broker's own book closes the position.
    _price(sim, position.symbol_token, (stop.trigger_paise - 2 * tick) / 100)
    _until(lambda: _sim_sells(sim)[0]["status"] == "complete")

    # Back up: recovery looks the resting stops up in the book (the monitor enqueues it on
    # every recovery pass), closes the position with the stop's fill, and places nothing.
    enqueue_broker_stop_sync()
    _run_burst_worker()
    closed = _position()
    (stop,) = _orders("STOP")
    assert stop.status == "FILLED" and stop.filled_quantity == position.quantity
    assert closed.status == "CLOSED" and closed.exit_reason == "stop_loss_at_broker"
    assert closed.exit_price_paise == stop.average_price_paise
    assert stop.average_price_paise >= stop.price_paise  # a limit: never worse than it
    assert closed.realized_pnl_paise == (
        (closed.exit_price_paise - closed.entry_price_paise) * closed.quantity)
    assert len(_sim_sells(sim)) == 1  # exactly one SELL ever reached the broker
    assert _orders("EXIT") == []
    enqueue_broker_stop_sync()  # again: nothing more happens
    _run_burst_worker()
    assert len(_sim_sells(sim)) == 1 and _position().status == "CLOSED"


def test_a_target_exit_cancels_the_resting_stop_then_sells(world: dict) -> None:
    sim = world["sim"]
    position, _ = _entered(world)
    outcome = exit_position(position.id, "target")  # type: ignore[arg-type]
    assert outcome.startswith(("closed", "exit working")), outcome
    _run_burst_worker()  # the sell's follower reads its fill from the book
    (stop,) = _orders("STOP")
    (sell,) = _orders("EXIT")
    assert stop.status == "CANCELLED" and stop.filled_quantity == 0
    assert sell.status == "FILLED" and sell.quantity == position.quantity
    closed = _position()
    assert closed.status == "CLOSED" and closed.exit_reason == "target"
    states = sorted(o["status"] for o in _sim_sells(sim))
    assert states == ["cancelled", "complete"]  # none left resting in the book


def test_a_stop_that_filled_while_the_monitor_exits_is_not_sold_again(world: dict) -> None:
    """The stop fills at the broker in the moment the monitor claims its own stop-loss exit:
    the exit job's cancel is refused (complete), it finds the fill, and sends no sell (a
    second sell would open a short)."""
    sim = world["sim"]
    position, stop = _entered(world)
    _price(sim, position.symbol_token, (stop.trigger_paise - 2 * position.tick_size_paise) / 100)
    _until(lambda: _sim_sells(sim)[0]["status"] == "complete")
    assert claim_for_exit(position.id) is not None  # type: ignore[arg-type]  # the monitor's claim
    outcome = exit_position(position.id, "stop_loss")  # type: ignore[arg-type]
    assert outcome == "closed: by its stop at the broker"
    closed = _position()
    assert closed.status == "CLOSED" and closed.exit_reason == "stop_loss_at_broker"
    assert _orders("EXIT") == [] and len(_sim_sells(sim)) == 1


def test_a_refused_or_broker_cancelled_stop_is_reported_and_the_position_stays_watched(
        world: dict) -> None:
    sim = world["sim"]
    _post(world["live"], id="bs-refused")
    _run_burst_worker()
    position = _position()
    with session_scope() as s:
        s.get(Position, position.id).broker_stop = True  # type: ignore[union-attr]
    # the broker's RMS refuses the stop (as Angel does an SL-limit outside its band)
    httpx.post(f"{sim.base_url}/sim/faults", json={
        "route": "placeOrder", "kind": "reject", "times": 1, "client": CLIENT,
        "message": "Difference between limit price and trigger price for SL Limit Order is "
                   "beyond the exchange's Permissible range"}).raise_for_status()
    outcome = broker_stops.place_stop(position.id)  # type: ignore[arg-type]
    assert outcome.startswith(("open", "rejected")), outcome  # Angel: RMS refuses just after
    enqueue_broker_stop_sync()
    _run_burst_worker()
    (stop,) = _orders("STOP")
    assert stop.status == "REJECTED"
    assert _position().status == "OPEN"  # still ours to protect: the monitor watches it
    assert len(_lost()) == 1 and "Permissible range" in _lost()[0].detail
    # placed again later; then the broker cancels it (as at the day's end)
    httpx.delete(f"{sim.base_url}/sim/faults").raise_for_status()
    assert broker_stops.place_stop(position.id).startswith(("open", "trigger_pending"))  # type: ignore[arg-type]
    _, stop = _orders("STOP")
    sim.state.orders.cancel(sim.state.orders.orders[stop.broker_order_id])
    enqueue_broker_stop_sync()
    _run_burst_worker()
    _, stop = _orders("STOP")
    assert stop.status == "CANCELLED" and _position().status == "OPEN"
    assert len(_lost()) == 2 and stop.client_order_id in _lost()[1].detail


def _lost() -> list[AuditEvent]:
    with session_scope() as s:
        return list(s.exec(select(AuditEvent)
                           .where(AuditEvent.action == "position.broker_stop_lost")
                           .order_by(AuditEvent.id)).all())  # type: ignore[arg-type]


def test_trailing_moves_the_resting_stop_up_by_ticks_within_the_accounts_budget(
        world: dict) -> None:
    sim = world["sim"]
    position, stop = _entered(world)
    tick = position.tick_size_paise
    base = stop.trigger_paise
    assert broker_stops.move_stop(position.id, base + tick // 2).startswith("skipped")  # type: ignore[arg-type]
    moved = [broker_stops.move_stop(position.id, base + n * 2 * tick)  # type: ignore[arg-type]
             for n in range(1, 6)]
    done = [m for m in moved if m.startswith("moved")]
    # five rises inside one or two seconds: at most ACCOUNT_MOVES_PER_S each second
    assert 1 <= len(done) <= 2 * broker_stops.ACCOUNT_MOVES_PER_S
    assert all(m.startswith(("moved", "skipped: the account")) for m in moved), moved
    (stop,) = _orders("STOP")
    last = int(Decimal(done[-1].split("-> ")[1]) * 100)
    assert stop.trigger_paise == last > base
    book = sim.state.orders.orders[stop.broker_order_id]
    assert round(book.triggerprice * 100) == last and book.status == "trigger pending"
    assert round(book.price * 100) == stop.price_paise < last
    # never down
    assert broker_stops.move_stop(position.id, base).startswith("skipped")  # type: ignore[arg-type]


def test_an_exit_claimed_before_the_stop_job_runs_places_no_stop(world: dict) -> None:
    """The monitor (or a sell alert) claims the position between its opening and the stop
    job: the job must not rest a stop for a position being sold (it would sell short)."""
    sim = world["sim"]
    _post(world["live"], id="bs-late")
    _run_burst_worker()
    position = _position()
    with session_scope() as s:
        s.get(Position, position.id).broker_stop = True  # type: ignore[union-attr]
    assert claim_for_exit(position.id) is not None  # type: ignore[arg-type]
    outcome = broker_stops.place_stop(position.id)  # type: ignore[arg-type]
    assert outcome.startswith("skipped") and "exiting" in outcome, outcome
    assert _orders("STOP") == [] and _sim_sells(sim) == []


def test_the_kill_switch_cancels_the_resting_stop_and_sells_once(world: dict) -> None:
    from ats_app.engine.execution import halt

    sim = world["sim"]
    position, _ = _entered(world)
    report = halt.kill(world["user"], settle_seconds=1)
    assert report.exits_enqueued == [position.id]
    _run_burst_worker()  # the exit job: the stop cancelled, then the sell (and its follower)
    (stop,) = _orders("STOP")
    (sell,) = _orders("EXIT")
    assert stop.status == "CANCELLED" and sell.status == "FILLED"
    closed = _position()
    assert closed.status == "CLOSED" and closed.exit_reason == "kill_switch"
    assert sorted(o["status"] for o in _sim_sells(sim)) == ["cancelled", "complete"]


def test_paper_positions_rest_their_stop_in_the_paper_book_alike(world: dict) -> None:
    """Paper: the same stop in our own book, triggered by the same rule; the monitor's exit
    finds it filled (the paper book meets the price before a cancel) and sells nothing."""
    sim = world["sim"]
    _stop_at_broker("paper")
    _post(world["paper"], id="bs-paper")
    _run_burst_worker()
    position = _position()
    (stop,) = _orders("STOP")
    assert position.paper and position.broker_stop
    assert stop.paper and stop.status == "TRIGGER_PENDING"
    _price(sim, position.symbol_token, (stop.trigger_paise - 2 * position.tick_size_paise) / 100)
    time.sleep(QUOTE_CACHE_S + 0.2)  # paper prices are quotes shared for a second
    assert claim_for_exit(position.id) is not None  # type: ignore[arg-type]
    assert exit_position(position.id, "stop_loss") == "closed: by its stop at the broker"  # type: ignore[arg-type]
    closed = _position()
    (stop,) = _orders("STOP")
    assert stop.status == "FILLED" and closed.exit_reason == "stop_loss_at_broker"
    assert closed.exit_price_paise == stop.average_price_paise >= stop.price_paise
    assert _orders("EXIT") == [] and _sim_sells(sim) == []  # nothing reached Angel


def _paper_position(world: dict, filled: int, of: int) -> Position:
    """A paper entry that filled `filled` of `of` units (the rest cancelled), opened as its
    position the way the job opens it."""
    from ats_app.engine.execution import positions

    _stop_at_broker("paper")
    _post(world["paper"], id="bs-part")
    _run_burst_worker()
    full = _position()
    _price(world["sim"], full.symbol_token, full.entry_price_paise / 100)  # no drift to the stop
    time.sleep(QUOTE_CACHE_S + 0.2)
    with session_scope() as s:  # the same contract, as a partial fill of a bigger order
        for row in s.exec(select(Order)).all():
            s.delete(row)
        s.delete(s.get(Position, full.id))
        link = s.exec(select(WebhookLink).where(WebhookLink.name == "paper")).one()
        entry = Order(user_id=world["user"], link_id=link.id, client_order_id="PART1",
                      purpose="ENTRY", exchange=full.exchange, symbol=full.symbol,
                      symbol_token=full.symbol_token, side="BUY", quantity=of,
                      status="CANCELLED", filled_quantity=filled,
                      average_price_paise=full.entry_price_paise, paper=True)
        s.add(entry)
    position = positions.open_from_entry(entry.id, Decimal("0.05"), None)  # type: ignore[arg-type]
    assert position is not None
    return position


def test_a_partly_filled_entry_rests_a_stop_for_the_filled_quantity(world: dict) -> None:
    position = _paper_position(world, filled=65, of=130)
    assert position.quantity == 65 and position.broker_stop
    assert broker_stops.place_stop(position.id).startswith("trigger_pending")  # type: ignore[arg-type]
    (stop,) = _orders("STOP")
    assert stop.quantity == 65 and stop.status == "TRIGGER_PENDING"


def test_a_stop_filled_in_part_leaves_only_the_rest_to_sell(world: dict) -> None:
    """The broker's stop sold 65 of 130 before its remainder was cancelled: the exit sells
    the other 65, and the P&L prices both parts."""
    position = _paper_position(world, filled=130, of=130)
    with session_scope() as s:
        s.add(Order(user_id=world["user"], position_id=position.id, client_order_id="P0S9",
                    purpose="STOP", exchange=position.exchange, symbol=position.symbol,
                    symbol_token=position.symbol_token, side="SELL", quantity=130,
                    order_type="STOPLOSS_LIMIT", status="CANCELLED", filled_quantity=65,
                    average_price_paise=position.entry_price_paise - 500, paper=True))
    assert exit_position(position.id, "target").startswith("closed: P")  # type: ignore[arg-type]
    (sell,) = _orders("EXIT")
    assert sell.quantity == 65 and sell.status == "FILLED"
    closed = _position()
    blended = round(((position.entry_price_paise - 500) * 65
                     + sell.average_price_paise * 65) / 130)
    assert closed.status == "CLOSED" and closed.exit_price_paise == blended
    assert closed.realized_pnl_paise == (blended - closed.entry_price_paise) * 130


def test_recovery_places_a_stop_that_never_reached_the_broker(world: dict) -> None:
    """The stop job died after writing its row SUBMITTING (the request never left): recovery
    finds it in no book, marks it so, and places the stop again, once."""
    position = _paper_position(world, filled=65, of=65)
    with session_scope() as s:
        s.add(Order(user_id=world["user"], position_id=position.id,
                    client_order_id=broker_stops.client_id(position.id, 0),  # type: ignore[arg-type]
                    purpose="STOP", exchange=position.exchange, symbol=position.symbol,
                    symbol_token=position.symbol_token, side="SELL", quantity=65,
                    order_type="STOPLOSS_LIMIT", status="SUBMITTING", paper=True,
                    created_at=utcnow() - timedelta(minutes=2)))
    assert broker_stops.sync_resting().endswith("1 to place")
    _run_burst_worker()
    first, second = _orders("STOP")
    assert first.status == "FAILED" and second.status == "TRIGGER_PENDING"
    assert broker_stops.sync_resting().endswith("0 to place")
