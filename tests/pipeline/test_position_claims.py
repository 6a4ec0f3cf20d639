"""The job and the order-update consumer may both finish the same order at the same moment:
exactly one position is opened for an entry, and it is closed exactly once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal

from sqlmodel import func, select

from ats_app.engine.execution import positions
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import AuditEvent, Order, Position
from ats_app.engine.tenants import users, webhooks

TICK = Decimal("0.05")


def _race(fn: Callable[[], object], n: int = 2) -> list[object]:
    """Run `fn` in `n` threads released together; their results (exceptions re-raised)."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn()
        except BaseException as exc:  # surfaced below, in the test's thread
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


def _filled(uid: int, link_id: int, coid: str, purpose: str = "ENTRY",
            position_id: int | None = None) -> int:
    with session_scope() as s:
        order = Order(user_id=uid, link_id=link_id, client_order_id=coid, purpose=purpose,
                      exchange="NFO", symbol="NIFTY26DEC2624000CE", symbol_token="43650",
                      side="BUY" if purpose == "ENTRY" else "SELL", quantity=75,
                      status="FILLED", filled_quantity=75, average_price_paise=10_000,
                      paper=True, position_id=position_id)
        s.add(order)
        s.flush()
        assert order.id is not None
        return order.id


def test_racing_finishers_open_one_position_and_close_it_once(database_url: str) -> None:
    with session_scope() as s:
        uid = users.create_user(s, "racer", "password123", "R", "C").id
        link, _ = webhooks.create_link(s, uid, name="race", accounts=[], strategy_id=None,
                                       stop_loss_pct=5, target_pct=None,
                                       trailing_stop_pct=None)
    for round_ in range(5):  # each round is a fresh race
        entry = _filled(uid, link.id, f"A{round_}E0")
        opened = _race(lambda entry=entry: positions.open_from_entry(entry, TICK, None))
        assert {p.id for p in opened} == {opened[0].id}  # both see the one position
        pid = opened[0].id
        exit_order = _filled(uid, link.id, f"P{pid}X0", "EXIT", position_id=pid)
        closed = _race(lambda pid=pid, exit_order=exit_order:
                       positions.close_from_exit(pid, exit_order, "target", None))
        assert all(p.status == "CLOSED" for p in closed)
    with session_scope() as s:
        assert s.exec(select(func.count()).select_from(Position)).one() == 5
        assert s.exec(select(func.count()).select_from(Position)
                      .where(Position.status == "CLOSED")).one() == 5
        assert s.exec(select(func.count()).select_from(AuditEvent)
                      .where(AuditEvent.action == "position.closed")).one() == 5
