"""Every ready-made TradingView message, filled as TradingView fills it and POSTed to the
webhook, is accepted and trades in paper mode (the simulator prices the paper fills)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select
from starlette.testclient import TestClient

from ats_app.api import build_api
from ats_app.engine.execution import entry
from ats_app.engine.intake import messages
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Order, Position
from tests.unit.test_alert_messages import pine_alert_messages, tradingview_fill


def _send(world: dict, text: str, values: dict[str, str], seconds_ago: int) -> Order:
    """POST one filled message; run its job; the order it made."""
    token, _secret = world["paper"]
    # {{timenow}}: the fire time, UTC to the second (each alert its own second).
    stamp = (datetime.now(UTC) - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = tradingview_fill(text, {"timenow": stamp, "close": "1502.35", **values})
    resp = TestClient(build_api()).post(f"/webhook/{token}", content=body.encode(),
                                        headers={"content-type": "application/json"})
    assert resp.status_code == 202, resp.text
    alert_id = resp.json()["alert_id"]
    outcome = entry.handle_alert(alert_id)
    with session_scope() as s:
        orders = s.exec(select(Order).where(Order.alert_id == alert_id)
                        .order_by(col(Order.id))).all()
        if not orders:  # an exit: its order hangs on the position, not on the alert
            orders = s.exec(select(Order).where(Order.purpose == "EXIT")
                            .order_by(col(Order.id).desc())).all()[:1]
    assert orders, outcome
    (order,) = orders
    assert order.paper and order.status == "FILLED", (order.status, order.reason, outcome)
    return order


def _open_positions() -> list[Position]:
    with session_scope() as s:
        return list(s.exec(select(Position).where(Position.status == "OPEN")).all())


def _plan(world: dict, **choices: object) -> messages.MessagePlan:
    return messages.build(messages.parse_trade(**choices), world["paper"][1])


def test_option_alertconditions_buy_call_exit_buy_put_exit(world: dict) -> None:
    plan = _plan(world, kind="option", underlying="NIFTY", strike="OTM1", expiry="next", lots=2)
    text = {m.name: m.message for m in plan.messages}
    call = _send(world, text["Buy CALL"], {}, 8)
    assert call.side == "BUY" and call.symbol.startswith("NIFTY") and call.symbol.endswith("CE")
    assert call.quantity == 2 * 65  # two lots of the master's NIFTY lot size
    assert len(_open_positions()) == 1
    out = _send(world, text["Exit"], {}, 6)
    assert (out.side, out.symbol, out.quantity) == ("SELL", call.symbol, call.quantity)
    assert _open_positions() == []
    put = _send(world, text["Buy PUT"], {}, 4)
    assert put.side == "BUY" and put.symbol.endswith("PE")
    # OTM1 on each side: the PUT's strike is below the CALL's, one step each way of ATM.
    assert int(put.symbol[-7:-2]) < int(call.symbol[-7:-2])
    _send(world, text["Exit"], {}, 2)
    assert _open_positions() == []


def test_option_strategy_alert_messages_trade_call_and_put(world: dict) -> None:
    plan = _plan(world, kind="option", underlying="BANKNIFTY", send="strategy")
    (message,) = plan.messages
    orders = pine_alert_messages(plan.pine)  # what the Pine's order calls put in the message
    call = _send(world, message.message,
                 {"strategy.order.alert_message": orders[("entry", "CALL")]}, 6)
    assert call.symbol.startswith("BANKNIFTY") and call.symbol.endswith("CE")
    out = _send(world, message.message,
                {"strategy.order.alert_message": orders[("close", "CALL")]}, 4)
    assert out.side == "SELL" and out.symbol == call.symbol
    put = _send(world, message.message,
                {"strategy.order.alert_message": orders[("entry", "PUT")]}, 2)
    assert put.side == "BUY" and put.symbol.endswith("PE")


@pytest.mark.parametrize("send", messages.SENDS)
@pytest.mark.parametrize("kind", ["stock", "future"])
def test_stock_and_future_messages_trade(world: dict, kind: str, send: str) -> None:
    future = next(i.symbol for i in world["sim"].state.master.instruments
                  if i.symbol.startswith("NIFTY") and i.symbol.endswith("FUT"))
    plan = _plan(world, kind=kind, send=send, symbol="RELIANCE", tradingsymbol=future,
                 exchange="NFO")
    traded = "RELIANCE-EQ" if kind == "stock" else future
    if send == "alertcondition":
        text = {m.name: m.message for m in plan.messages}
        steps = [(text["Buy"], {}), (text["Exit"], {})]
    else:
        (message,) = plan.messages
        steps = [(message.message, {"strategy.order.action": a}) for a in ("buy", "sell")]
    buy = _send(world, *steps[0], 4)
    assert (buy.side, buy.symbol) == ("BUY", traded)
    # {{close}} of the stock's chart is the signal's price; a future's message sends none.
    assert buy.price_paise == (150235 if kind == "stock" else None)
    sell = _send(world, *steps[1], 2)
    assert (sell.side, sell.symbol, sell.quantity) == ("SELL", traded, buy.quantity)
    assert _open_positions() == []


def test_send_test_alert_body_trades(world: dict) -> None:
    """What the Webhooks page's "Send test alert" posts: the builder's first entry."""
    plan = _plan(world, kind="option", strike="ITM2")
    token, _secret = world["paper"]
    body = messages.body_for_test_alert(plan, datetime.now(UTC))
    resp = TestClient(build_api()).post(f"/webhook/{token}", content=body)
    assert resp.status_code == 202, resp.text
    assert entry.handle_alert(resp.json()["alert_id"]).startswith("filled")
