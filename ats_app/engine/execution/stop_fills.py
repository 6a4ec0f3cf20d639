"""What the broker's answers about a resting stop mean for its position (see
`broker_stops`): its fill closes the position (`stop_loss_at_broker`); refused or cancelled
by the broker while the position is open, the user hears of it at once.

Apart from `broker_stops` because the order-update stream needs it, and the stream sits
below the order path that `broker_stops` uses to place and cancel.
"""

from __future__ import annotations

import redis
from sqlmodel import Session, col, select

from ats_app.engine.core.fsm import OrderStatus, is_terminal
from ats_app.engine.execution import positions
from ats_app.engine.exits.rules import ExitReason
from ats_app.engine.store import audit, live
from ats_app.engine.store.db import after_commit, joined
from ats_app.engine.store.models import Order, Position

STOP = "STOP"  # Order.purpose of a resting stop
AT_BROKER = ExitReason.STOP_LOSS_AT_BROKER.value


def stop_orders(s: Session, position_id: int) -> list[Order]:
    return list(s.exec(select(Order).where(Order.position_id == position_id)
                       .where(Order.purpose == STOP).order_by(col(Order.id))).all())


def average_fill(orders: list[Order]) -> int | None:
    """The volume-weighted fill price of these orders, in paise."""
    qty = sum(o.filled_quantity for o in orders if o.average_price_paise)
    if not qty:
        return None
    value = sum(o.filled_quantity * (o.average_price_paise or 0) for o in orders)
    return round(value / qty)


def on_stop_report(order: Order, conn: redis.Redis | None, *,
                   session: Session | None = None) -> None:
    """A stop order reached a final status: filled, the position is closed by it; refused or
    cancelled by the broker while the position is open, the user hears of it at once (the
    monitor keeps protecting the position)."""
    if order.position_id is None or not is_terminal(OrderStatus(order.status)):
        return
    with joined(session) as s:
        position = s.get(Position, order.position_id, populate_existing=True)
        if position is None or position.status == "CLOSED":
            return
        stops = stop_orders(s, order.position_id)
        if sum(o.filled_quantity for o in stops) >= position.quantity:
            positions.close_from_exit(order.position_id, order.id, AT_BROKER, conn,  # type: ignore[arg-type]
                                      session=s, exit_price_paise=average_fill(stops))
            s.commit()
            return
        if position.status != "OPEN":
            return  # an exit job cancelled it, and sells the rest
        audit.record(s, "position.broker_stop_lost", user_id=position.user_id,
                     subject=str(position.id), order=order.client_order_id,
                     status=order.status, reason=order.reason,
                     filled=order.filled_quantity)
        user_id, pid, symbol, reason = (position.user_id, position.id, position.symbol,
                                        order.reason or order.status.lower())
        after_commit(s, lambda: _tell_lost(conn, user_id, pid, symbol, reason))
        s.commit()


def _tell_lost(conn: redis.Redis | None, user_id: int, position_id: int, symbol: str,
               reason: str) -> None:
    from ats_app.engine.notify import notices  # lazy: only workers send notices

    notices.emit(user_id, "broker_stop_lost", once=f"stop-lost-{position_id}-{reason[:40]}",
                 symbol=symbol, position_id=position_id, reason=reason)
    if conn is not None:
        live.publish(conn, user_id, {"type": "position", "event": "broker_stop_lost",
                                     "position_id": position_id})
