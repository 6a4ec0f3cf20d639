"""The job and the order-update consumer change the same order row at the same moment: a
report applied on a stale read must never write an older status over a newer one."""

from __future__ import annotations

import threading
from decimal import Decimal

from ats_app.engine.broker.base import BrokerOrder
from ats_app.engine.core.fsm import OrderEvent, OrderStatus
from ats_app.engine.execution import order_store, submit
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Order
from ats_app.engine.tenants import users


def test_the_jobs_open_report_never_overwrites_the_consumers_fill(database_url: str) -> None:
    with session_scope() as s:
        uid = users.create_user(s, "racer", "password123", "R", "C").id
    order = order_store.create(Order(
        user_id=uid, client_order_id="RACE1", purpose="ENTRY", exchange="NSE",
        symbol="SBIN-EQ", symbol_token="3045", side="BUY", quantity=10, paper=False))
    assert order.id is not None
    order_store.transition(order.id, OrderEvent.SUBMIT)
    opened = BrokerOrder(client_order_id="RACE1", broker_order_id="B1",
                         status=OrderStatus.OPEN, quantity=10)
    filled = BrokerOrder(client_order_id="RACE1", broker_order_id="B1",
                         status=OrderStatus.FILLED, quantity=10, filled_quantity=10,
                         average_price=Decimal("800"))
    errors: list[BaseException] = []

    def consumer() -> None:
        try:
            order_store.apply_report(order.id, filled, quiet=True)  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=consumer)
    with submit.job_session() as s:
        # The job applies the REST answer (OPEN) in its own transaction, as `_send` does...
        order_store.apply_report(order.id, opened, quiet=True, session=s)
        # ... and the socket's fill arrives before that transaction commits.
        t.start()
        t.join(1.0)
    t.join(15)
    assert not t.is_alive() and not errors, errors
    final = order_store.get(order.id)
    assert final.status == "FILLED" and final.filled_quantity == 10, final
