"""Stops resting at the broker, at Angel One's pace, on the real process stack.

Run: ``.venv/bin/python -m bench.broker_stop_bench``. The stack of `fanout_bench` (backend
with its dev services, 4 RQ worker processes, the simulator under its `angel` latency
profile: orders 100-300 ms, book ~150 ms, fills 200-500 ms after acceptance) on a fresh
PostgreSQL database. One live link with Stop at broker on one account; each round buys,
waits for the stop to rest at the broker, then sells by an exit alert (which cancels the
stop first) and waits for the position to close.

Per round:
- entry fill -> stop at the broker: from our record of the entry's fill (audit
  `order.fill`) to the broker's answer to the stop's placeOrder (its `order.accept`);
- exit alert -> sell answered: from the exit alert's arrival to the broker's answer to the
  sell, which now waits for the stop's cancel to be confirmed first;
next to the floor: one direct placeOrder to the same simulator through the official SDK.
Checked every round: one stop and one sell per position in the simulator's book, the stop
cancelled, never filled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.fanout_bench import (
    FLOOR_CLIENT,
    PIN,
    TOTP,
    _floor_place_order,
    _ms,
    _pace,
    _post,
    _sim,
)
from bench.results import percentile, save
from bench.webhook_bench import _database, _exit_body, live_stack

CLIENT = "BSTOP01"


def _world(sim_url: str) -> dict[str, Any]:
    from ats_app.engine.risk import bot, gate
    from ats_app.engine.store.db import session_scope
    from ats_app.engine.tenants import accounts, users, webhooks

    for code in (CLIENT, FLOOR_CLIENT):
        _sim(sim_url, "POST", "/sim/accounts", {"clientcode": code, "pin": PIN,
                                                "totp_secret": TOTP, "cash": 1e9})
    with session_scope() as s:
        uid = users.create_user(s, "stops", "benchpassword", "S", "Top").id
        acct = accounts.add_account(s, uid, label="stops", client_id=CLIENT, api_key="k",
                                    pin=PIN, totp_secret=TOTP, base_url=sim_url).id
        gate.set_limits(s, uid, max_open_positions=None, max_orders_per_day=None)
        link, secret = webhooks.create_link(
            s, uid, name="stops", strategy_id=None, stop_loss_pct=20, target_pct=100,
            trailing_stop_pct=None, paper=False, broker_stop=True,
            accounts=[webhooks.LinkAccount(acct, 1)])  # type: ignore[arg-type]
        bot.set_running(s, uid, True)
    return {"id": link.id, "token": link.token, "secret": secret}


def _buy(link: dict[str, Any], tag: str) -> bytes:
    return json.dumps({"secret": link["secret"], "action": "buy", "symbol": "NIFTY",
                       "option": "CE", "strike": "ATM", "lots": 1,
                       "id": f"{tag}-{time.time_ns()}"}).encode()


def _wait(check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.02)
    raise TimeoutError("timed out")


def _events(s: Any, tag: str) -> dict[str, Any]:
    from sqlmodel import select

    from ats_app.engine.store.models import AuditEvent

    return {e.action: e.created_at for e in s.exec(
        select(AuditEvent).where(AuditEvent.subject == tag)).all()}


def _round(backend: str, sim_url: str, link: dict[str, Any], n: int) -> dict[str, Any]:
    from sqlmodel import select

    from ats_app.engine.store.db import session_scope
    from ats_app.engine.store.models import Alert, Order, Position

    (entry_alert,) = asyncio.run(_post(backend, [(0.0, link, _buy(link, f"in{n}"))]))

    def stop_placed() -> Any:
        with session_scope() as s:
            entry = s.exec(select(Order).where(Order.alert_id == entry_alert)).first()
            if entry is None or entry.position_id is None:
                return None
            stop = s.exec(select(Order).where(Order.position_id == entry.position_id)
                          .where(Order.purpose == "STOP")).first()
            if stop is None or not stop.broker_order_id:
                return None
            fill, accept = (_events(s, entry.client_order_id).get("order.fill"),
                            _events(s, stop.client_order_id).get("order.accept"))
            return (entry.position_id, stop.client_order_id, fill, accept) \
                if fill and accept else None

    position_id, stop_tag, filled, rested = _wait(stop_placed)
    (exit_alert,) = asyncio.run(_post(backend, [(0.0, link, _exit_body(link, f"out{n}"))]))

    def closed() -> Any:
        with session_scope() as s:
            p = s.get(Position, position_id)
            sell = s.exec(select(Order).where(Order.position_id == position_id)
                          .where(Order.purpose == "EXIT")).first()
            if p is None or p.status != "CLOSED" or sell is None:
                return None
            accept = _events(s, sell.client_order_id).get("order.accept")
            received = s.get(Alert, exit_alert).received_at  # type: ignore[union-attr]
            return (sell.client_order_id, received, accept) if accept else None

    sell_tag, received, sold = _wait(closed)
    book = {o["ordertag"]: o for o in _sim(sim_url, "GET", "/sim/orders")["orders"]}
    return {"fill_to_stop_ms": _ms(rested - filled), "exit_to_sell_ms": _ms(sold - received),
            "stop_cancelled": book[stop_tag]["status"] == "cancelled",
            "one_sell_each": sum(o["transactiontype"] == "SELL" and o["ordertag"] in
                                 (stop_tag, sell_tag) for o in book.values()) == 2}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--database", default="postgres", choices=("postgres", "sqlite"))
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="ats-bstop-"))
    with _database(args.database, tmp) as url:
        if url is None:
            return 1
        with live_stack(url, tmp, 4) as stack:
            backend, sim_url = stack["server"].backend, stack["sim_url"]
            link = _world(sim_url)
            _pace(sim_url, "angel")
            floor = _floor_place_order(sim_url)
            rounds = [_round(backend, sim_url, link, n) for n in range(args.rounds + 1)][1:]
    fill = [r["fill_to_stop_ms"] for r in rounds]
    sell = [r["exit_to_sell_ms"] for r in rounds]
    result = {
        "rounds": len(rounds), "floor_place_order": floor, "database": args.database,
        "fill_to_stop_p50_ms": round(percentile(fill, 50), 1),
        "fill_to_stop_p99_ms": round(percentile(fill, 99), 1),
        "exit_alert_to_sell_p50_ms": round(percentile(sell, 50), 1),
        "exit_alert_to_sell_p99_ms": round(percentile(sell, 99), 1),
        "every_stop_cancelled_never_filled": all(r["stop_cancelled"] for r in rounds),
        "one_stop_and_one_sell_per_position": all(r["one_sell_each"] for r in rounds),
    }
    print(json.dumps(result, indent=2))
    save("broker_stops", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
