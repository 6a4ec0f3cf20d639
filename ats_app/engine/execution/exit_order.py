"""The exit job: sell an open position exactly once, for the monitor, a sell alert, the
square-off or the kill switch (the OPEN -> EXITING claim makes racing triggers lose)."""

from __future__ import annotations

import time
from decimal import Decimal

from sqlmodel import Session, select

from ats_app.engine.broker.base import Broker
from ats_app.engine.broker.factory import broker_for
from ats_app.engine.core.fsm import OrderStatus, is_terminal
from ats_app.engine.core.money import to_rupees
from ats_app.engine.execution import broker_stops, positions, stop_fills
from ats_app.engine.execution.submit import (
    drive,
    job_session,
    log_outcome,
    never_reached_broker,
    request_for,
    send_or_drive,
    write_submitting,
)
from ats_app.engine.exits.claims import claim_for_exit
from ats_app.engine.store.db import joined
from ats_app.engine.store.models import (
    Order,
    Position,
)
from ats_app.engine.store.queueing import connection


def exit_position(
    position_id: int,
    reason: str,
    *,
    alert_id: int | None = None,
    broker: Broker | None = None,
    session: Session | None = None,
) -> str:
    """Sell an open position exactly once (the OPEN -> EXITING claim makes racers lose)."""
    with joined(session, job_session) as s:
        position = claim_for_exit(position_id, session=s)
        if position is None:
            current = s.get(Position, position_id, populate_existing=True)
            state = current.status if current else "missing"
            if state != "EXITING":
                return f"ignored: position {state.lower()}"
            position = current  # a retried exit job resumes its own claim
        assert position is not None
        if broker is None:
            broker = broker_for(
                s, position.user_id, position.account_id, paper=position.paper, redis=connection()
            )
        attempts = s.exec(
            select(Order).where(Order.position_id == position_id).where(Order.purpose == "EXIT")
        ).all()
        live = [
            o
            for o in attempts
            if not is_terminal(OrderStatus(o.status)) or OrderStatus(o.status) == OrderStatus.FILLED
        ]
        tick = to_rupees(position.tick_size_paise) or Decimal("0.05")
        s.commit()  # the claim stands alone: a lost insert race below rolls back
        quantity = position.quantity
        if position.broker_stop and not live:
            # One exit, never two: no sell while a stop can still fill at the broker.
            quantity = broker_stops.clear_for_exit(s, position, broker)
            if quantity == 0:
                return "closed: by its stop at the broker"
        if live:
            order = drive(live[0].id, broker, request_for(live[0], tick), session=s)  # type: ignore[arg-type]
        else:
            candidate = Order(
                user_id=position.user_id,
                alert_id=alert_id,
                account_id=position.account_id,
                link_id=position.link_id,
                position_id=position_id,
                client_order_id=f"P{position_id}X{len(attempts)}",
                purpose="EXIT",
                exchange=position.exchange,
                symbol=position.symbol,
                symbol_token=position.symbol_token,
                side="SELL",
                quantity=quantity,
                paper=position.paper,
                reason=reason,
            )
            order = send_or_drive(s, write_submitting(s, candidate), candidate, broker, tick)
        if never_reached_broker(order) and not position.broker_stop:
            # Looked up and not in the broker's book (an empty or lost answer to a request
            # that never arrived): sent once more under the next client id, which cannot sell
            # twice. Released instead, a signal's exit was simply not done (the monitor's
            # would claim the position again; nothing repeats a sell alert).
            # Its successor's id follows from its own, not from a count of the attempts: when
            # another job (the monitor's exit and a sell alert at once) has already sent the
            # next attempt, this finds that row and follows it instead of selling again (a
            # count-based id was a third attempt: sold twice in a soak, seed 70417).
            n = int(order.client_order_id.rsplit("X", 1)[1])
            again = candidate_like(order, f"P{position_id}X{n + 1}", reason)
            order = send_or_drive(s, write_submitting(s, again), again, broker, tick)
        if OrderStatus(order.status) == OrderStatus.FILLED:
            sold = [order, *stop_fills.stop_orders(s, position_id)]  # a stop's part fill too
            positions.close_from_exit(position_id, order.id, reason, connection(), session=s,  # type: ignore[arg-type]
                                      exit_price_paise=stop_fills.average_fill(sold))
            return f"closed: {order.client_order_id}"
        if is_terminal(OrderStatus(order.status)):
            positions.release_exit(
                position_id, f"exit order {order.status.lower()}: {order.reason}", session=s
            )
            return f"exit {order.status.lower()}: {order.reason}"
        return f"exit working: {order.client_order_id}"


def candidate_like(order: Order, client_order_id: str, reason: str) -> Order:
    """A new attempt of `order` under another client id (its status and ids fresh, its
    reason the exit's: the failed attempt's now says why it failed)."""
    return Order(
        user_id=order.user_id, alert_id=order.alert_id, account_id=order.account_id,
        link_id=order.link_id, position_id=order.position_id, client_order_id=client_order_id,
        purpose=order.purpose, exchange=order.exchange, symbol=order.symbol,
        symbol_token=order.symbol_token, side=order.side, quantity=order.quantity,
        paper=order.paper, reason=reason,
    )


def handle_exit(position_id: int, reason: str) -> str:
    """The RQ job the monitor enqueues when a stop-loss, target or trailing stop is hit."""
    started = time.perf_counter()
    outcome = exit_position(position_id, reason)
    log_outcome(f"exit of position {position_id} ({reason})", outcome, started)
    return outcome
