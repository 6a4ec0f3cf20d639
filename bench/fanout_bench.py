"""Fan-out and bursts at Angel One's pace, on the real process stack.

Run: ``.venv/bin/python -m bench.fanout_bench``. Starts `reflex run --backend-only` with its
dev services (embedded Redis, one RQ worker, the order-update consumer, monitor, feed,
simulator) plus 3 more RQ worker processes (4 in all, each running ATS_WORKER_THREADS jobs
at once, default 4; `--threads 1` for one job per process) on a fresh PostgreSQL database
(BENCH_PG_DSN's server; `--database sqlite` for the dev default), and 54 simulated Angel
accounts.

1. Fan-out: one alert on a live link with 10, then 50 accounts, `--rounds` times after a
   warm-up (every account logged in, as the 08:45 pre-open does), twice: placeOrder answering
   150 ms late (the issue's condition: a latency fault on the instant simulator) and under
   the simulator's `angel` profile (orders 100-300 ms, book ~150 ms, fills 200-500 ms after
   acceptance). Per round: the spread of the order rows' creation and the last row after
   the alert; the spread of the broker's answers (each order's ACCEPT) and the last after
   the alert; orders filled; orders per account in our database and in the simulator's book
   (by ordertag: exactly one each).
2. Bursts (angel profile): 8 alerts at once on 8 links (one account each) on 4 workers; from
   each alert's arrival to the broker's answer to its order, against the floor: one direct
   placeOrder to the same simulator with the official SDK, measured in the same run.
3. Flood (angel profile): 100 alerts in 1 s on one link with 3 accounts, buy and exit in
   turn; then every alert must reach a final status, every order a final state, and the
   simulator's book must hold exactly our orders: none doubled, none lost, no orphan.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp

from bench.results import RESULTS, percentile, save
from bench.webhook_bench import _database, _exit_body, live_stack

PIN = "1234"
TOTP = "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"
FLOOR_CLIENT = "FLOOR01"  # a simulator-only account for the direct placeOrder floor
FINAL_ORDER = ("FILLED", "REJECTED", "CANCELLED", "FAILED")
FINAL_ALERT = ("DONE", "REJECTED", "FAILED", "IGNORED", "REFUSED")


def _client(i: int) -> str:
    return f"F{i:04d}"


def _ms(delta: timedelta) -> float:
    return delta / timedelta(milliseconds=1)


def _sim(sim_url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    r = httpx.request(method, f"{sim_url}{path}", json=body, timeout=10)
    r.raise_for_status()
    return r.json()


def _pace(sim_url: str, mode: str) -> None:
    """"150ms": the instant simulator with placeOrder answering 150 ms late; "angel": the
    simulator's Angel latency profile."""
    _sim(sim_url, "DELETE", "/sim/faults", {})
    _sim(sim_url, "POST", "/sim/faults", {"profile": "instant" if mode == "150ms" else "angel"})
    if mode == "150ms":
        _sim(sim_url, "POST", "/sim/faults", {"route": "placeOrder", "kind": "latency",
                                              "ms": 150})


def _world(sim_url: str, n_accounts: int) -> dict[str, Any]:
    """One live user with `n_accounts` simulated accounts and the links the sections use."""
    from ats_app.engine.risk import bot, gate
    from ats_app.engine.store.db import session_scope
    from ats_app.engine.tenants import accounts, users, webhooks

    for code in [*map(_client, range(n_accounts)), FLOOR_CLIENT]:
        _sim(sim_url, "POST", "/sim/accounts", {"clientcode": code, "pin": PIN,
                                                "totp_secret": TOTP, "cash": 1e9})
    links: dict[str, Any] = {}
    with session_scope() as s:
        uid = users.create_user(s, "fleet", "benchpassword", "F", "Leet").id
        ids = [accounts.add_account(s, uid, label=f"acct-{i}", client_id=_client(i),
                                    api_key=f"k{i}", pin=PIN, totp_secret=TOTP,
                                    base_url=sim_url).id for i in range(n_accounts)]
        # The benchmark measures speed, not the default limits (5 positions, 50 orders/day).
        gate.set_limits(s, uid, max_open_positions=None, max_orders_per_day=None)
        plan = {"fan10": ids[:10], "fan50": ids[:50], "flood": ids[50:53],
                **{f"burst{i}": [ids[i]] for i in range(8)}}
        for name, members in plan.items():
            link, secret = webhooks.create_link(
                s, uid, name=name, strategy_id=None, stop_loss_pct=50, target_pct=100,
                trailing_stop_pct=None, paper=False,
                accounts=[webhooks.LinkAccount(a, 1) for a in members])  # type: ignore[arg-type]
            links[name] = {"id": link.id, "token": link.token, "secret": secret,
                           "accounts": members}
        bot.set_running(s, uid, True)
    return links


def _buy(link: dict[str, Any], tag: str) -> bytes:
    return json.dumps({"secret": link["secret"], "action": "buy", "symbol": "NIFTY",
                       "option": "CE", "strike": "ATM", "lots": 1,
                       "id": f"{tag}-{time.time_ns()}"}).encode()


async def _post(backend: str, sends: list[tuple[float, dict[str, Any], bytes]]) -> list[int]:
    """POST each body at its offset (seconds from now); returns the alert ids, in order."""
    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=30) as client:
        async def one(at: float, link: dict[str, Any], body: bytes) -> int:
            await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
            r = await client.post(f"{backend}/webhook/{link['token']}", content=body)
            assert r.status_code == 202, r.text
            return int(r.json()["alert_id"])
        return list(await asyncio.gather(*(one(*s) for s in sends)))


def _settled(alert_ids: list[int], timeout: float = 60) -> bool:
    """Every alert final and every one of their orders final (the fills are in)."""
    from sqlmodel import col, select

    from ats_app.engine.store.db import session_scope
    from ats_app.engine.store.models import Alert, Order

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope() as s:
            alerts = s.exec(select(Alert.status).where(col(Alert.id).in_(alert_ids))).all()
            open_orders = s.exec(select(Order.id).where(col(Order.alert_id).in_(alert_ids))
                                 .where(col(Order.status).not_in(FINAL_ORDER))).all()
        if len(alerts) == len(alert_ids) and all(a in FINAL_ALERT for a in alerts) \
                and not open_orders:
            return True
        time.sleep(0.05)
    return False


def _flat(backend: str, link: dict[str, Any], tag: str) -> None:
    """Exit the link's positions and wait until none is open."""
    (alert_id,) = asyncio.run(_post(backend, [(0.0, link, _exit_body(link, tag))]))
    if not _settled([alert_id]):
        print(f"warning: exit {tag} not settled")


def _orders(alert_id: int) -> list[dict[str, Any]]:
    """The alert's orders with their creation, the broker's answer (ACCEPT) and the fill."""
    from sqlmodel import col, select

    from ats_app.engine.store.db import session_scope
    from ats_app.engine.store.models import Alert, AuditEvent, Order

    with session_scope() as s:
        received = s.get(Alert, alert_id).received_at  # type: ignore[union-attr]
        out = []
        for o in s.exec(select(Order).where(Order.alert_id == alert_id)
                        .order_by(col(Order.id))).all():
            events = {e.action: e.created_at for e in s.exec(
                select(AuditEvent).where(AuditEvent.subject == o.client_order_id)).all()}
            out.append({"account_id": o.account_id, "tag": o.client_order_id,
                        "status": o.status, "received": received, "created": o.created_at,
                        "submitted": events.get("order.submit"),
                        "accepted": events.get("order.accept"),
                        "filled": events.get("order.fill")})
    return out


def _book_tags(sim_url: str) -> Counter[str]:
    return Counter(o["ordertag"] for o in _sim(sim_url, "GET", "/sim/orders")["orders"])


def _fanout(backend: str, sim_url: str, link: dict[str, Any], rounds: int) -> dict[str, Any]:
    n = len(link["accounts"])
    per_round: list[dict[str, Any]] = []
    for r in range(-1, rounds):  # round -1 warms: logins, the contract, the sockets
        (alert_id,) = asyncio.run(_post(backend, [(0.0, link, _buy(link, f"fan{n}-{r}"))]))
        settled = _settled([alert_id])
        orders = _orders(alert_id)
        _flat(backend, link, f"fanx{n}-{r}-{time.time_ns()}")
        if r < 0:
            continue
        book = _book_tags(sim_url)
        created = sorted(o["created"] for o in orders)
        answered = sorted(o["accepted"] for o in orders if o["accepted"] is not None)
        received = orders[0]["received"] if orders else None
        per_account = Counter(o["account_id"] for o in orders)
        per_round.append({
            "settled": settled, "orders": len(orders),
            "filled": sum(o["status"] == "FILLED" for o in orders),
            "max_orders_per_account": max(per_account.values(), default=0),
            "in_book_once": sum(book[o["tag"]] == 1 for o in orders),
            "rows_spread_ms": round(_ms(created[-1] - created[0]), 1) if created else None,
            "last_row_after_alert_ms": round(_ms(created[-1] - received), 1)
            if created else None,
            "answers_spread_ms": round(_ms(answered[-1] - answered[0]), 1)
            if answered else None,
            "last_answer_after_alert_ms": round(_ms(answered[-1] - received), 1)
            if answered else None,
        })
    worst = {k: max(p[k] for p in per_round) for k in
             ("rows_spread_ms", "last_row_after_alert_ms", "answers_spread_ms",
              "last_answer_after_alert_ms", "max_orders_per_account")}
    ok = all(p["settled"] and p["orders"] == n and p["filled"] == n and p["in_book_once"] == n
             for p in per_round)
    return {"accounts": n, "rounds": per_round, "worst": worst, "all_filled_once": ok}


def _floor_place_order(sim_url: str, n: int = 40) -> dict[str, float]:
    """One direct placeOrder to the simulator with the official SDK (logged in once)."""
    from SmartApi import SmartConnect

    sc = SmartConnect(api_key="floor", root=sim_url, timeout=10)
    sc.generateSession(FLOOR_CLIENT, PIN, pyotp.TOTP(TOTP).now())
    params = {"variety": "NORMAL", "tradingsymbol": "SBIN-EQ", "symboltoken": "3045",
              "transactiontype": "BUY", "exchange": "NSE", "ordertype": "MARKET",
              "producttype": "INTRADAY", "duration": "DAY", "price": "0", "quantity": "1"}
    lat = []
    for i in range(n):
        t0 = time.perf_counter()
        r = sc.placeOrderFullResponse({**params, "ordertag": f"floor{i}"})
        lat.append((time.perf_counter() - t0) * 1000)
        assert r["status"] is True, r
    return {"p50_ms": round(percentile(lat, 50), 1), "p99_ms": round(percentile(lat, 99), 1),
            "samples": n}


def _job_started(alert_ids: list[int], redis_url: str) -> dict[int, Any]:
    """When each alert's RQ job started (RQ stamps naive UTC)."""
    import redis
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    from ats_app.engine.store.queueing import alert_job_id

    conn = redis.Redis.from_url(redis_url)
    out = {}
    for a in alert_ids:
        try:
            job = Job.fetch(alert_job_id(a), connection=conn)
        except NoSuchJobError:
            continue
        if job.started_at is not None:
            out[a] = job.started_at
    return out


def _calls(sim_url: str) -> Counter[str]:
    return Counter(_sim(sim_url, "GET", "/sim/health")["calls"])


def _bursts(backend: str, sim_url: str, links: list[dict[str, Any]], rounds: int,
            floor: dict[str, float], redis_url: str) -> dict[str, Any]:
    to_answer, to_sent, to_fill, to_job, to_row = [], [], [], [], []
    calls = Counter[str]()
    for r in range(-1, rounds):
        if r == 0:
            calls = _calls(sim_url)
        ids = asyncio.run(_post(backend, [(0.0, lk, _buy(lk, f"b{r}-{i}"))
                                          for i, lk in enumerate(links)]))
        _settled(ids)
        started = _job_started(ids, redis_url)
        orders = [{**o, "job": started.get(a)} for a in ids for o in _orders(a)]
        for i, lk in enumerate(links):
            _flat(backend, lk, f"bx{r}-{i}-{time.time_ns()}")
        if r < 0:
            continue
        for o in orders:
            if o["job"] is not None:
                to_job.append(_ms(o["job"].replace(tzinfo=o["received"].tzinfo) - o["received"]))
            to_row.append(_ms(o["created"] - o["received"]))
            if o["accepted"] is not None:
                to_answer.append(_ms(o["accepted"] - o["received"]))
            if o["submitted"] is not None:
                to_sent.append(_ms(o["submitted"] - o["received"]))
            if o["filled"] is not None:
                to_fill.append(_ms(o["filled"] - o["received"]))
    # SmartAPI calls per measured alert (entry and exit), by route: what each trade costs.
    per_alert = {k: round(v / (rounds * len(links)), 2)
                 for k, v in sorted((_calls(sim_url) - calls).items())}
    p50, p99 = percentile(to_answer, 50), percentile(to_answer, 99)
    return {
        "sim_calls_per_alert": per_alert,
        "alerts": rounds * len(links), "orders_answered": len(to_answer),
        "to_broker_answer_p50_ms": round(p50, 1), "to_broker_answer_p99_ms": round(p99, 1),
        # Where the time goes: until the job starts (ack, RQ, a free worker), the row, the send.
        "to_job_start_p50_ms": round(percentile(to_job, 50), 1),
        "to_job_start_p99_ms": round(percentile(to_job, 99), 1),
        "to_row_p50_ms": round(percentile(to_row, 50), 1),
        "to_row_p99_ms": round(percentile(to_row, 99), 1),
        "to_sent_p50_ms": round(percentile(to_sent, 50), 1),
        "to_sent_p99_ms": round(percentile(to_sent, 99), 1),
        "to_fill_p50_ms": round(percentile(to_fill, 50), 1),
        "to_fill_p99_ms": round(percentile(to_fill, 99), 1),
        "floor_place_order": floor,
        # Against the floor's same percentile, and (stricter at p99) against its median.
        "ratio_p50": round(p50 / floor["p50_ms"], 2),
        "ratio_p99": round(p99 / floor["p99_ms"], 2),
        "ratio_p99_to_floor_p50": round(p99 / floor["p50_ms"], 2),
    }


def _flood(backend: str, sim_url: str, link: dict[str, Any], n: int = 100,
           seconds: float = 1.0) -> dict[str, Any]:
    from sqlmodel import col, func, select

    from ats_app.engine.store.db import session_scope
    from ats_app.engine.store.models import Alert, Order, Position

    before = _book_tags(sim_url)
    t0 = time.perf_counter()
    sends = [(i * seconds / n, link, _buy(link, f"fl{i}") if i % 2 == 0
              else _exit_body(link, f"flx{i}-{time.time_ns()}")) for i in range(n)]
    ids = asyncio.run(_post(backend, sends))
    sent_s = time.perf_counter() - t0
    settled = _settled(ids, timeout=180)
    settle_s = time.perf_counter() - t0
    with session_scope() as s:
        statuses = Counter(s.exec(select(Alert.status).where(col(Alert.id).in_(ids))).all())
        orders = s.exec(select(Order).where(col(Order.alert_id).in_(ids))).all()
        open_now = s.exec(select(Position.account_id, func.count()).where(
            Position.link_id == link["id"]).where(col(Position.status).in_(("OPEN", "EXITING")))
            .group_by(Position.account_id)).all()
        stuck = [a for a, st in s.exec(select(Alert.id, Alert.status)
                                       .where(col(Alert.id).in_(ids))).all()
                 if st not in FINAL_ALERT][:3]
        examples = [_story(s, a) for a in stuck]
    book = _book_tags(sim_url) - before
    ours = {o.client_order_id for o in orders}
    placed = [o for o in orders if o.broker_order_id]
    _flat(backend, link, f"flx-end-{time.time_ns()}")
    return {
        "alerts": n, "sent_in_s": round(sent_s, 2), "settled": settled,
        "all_settled_in_s": round(settle_s, 2),
        "alert_statuses": dict(statuses),
        "lost_alerts": n - sum(statuses[st] for st in FINAL_ALERT),
        "orders": len(orders), "orders_placed": len(placed),
        "orders_by_status": dict(Counter(o.status for o in orders)),
        "orders_not_final": sum(o.status not in FINAL_ORDER for o in orders),
        "doubled_at_broker": sum(1 for t in ours if book[t] > 1),
        "missing_at_broker": sum(1 for o in placed if book[o.client_order_id] == 0),
        "orphans_at_broker": sum(1 for t in book if t not in ours),
        "max_open_per_account": max((c for _, c in open_now), default=0),
        "not_final_examples": examples,
    }


def _story(s: Any, alert_id: int) -> dict[str, Any]:
    """An alert that did not reach a final status: its targets, orders and audit trail."""
    from sqlmodel import col, select

    from ats_app.engine.store.models import AlertTarget, AuditEvent, Order

    orders = s.exec(select(Order).where(Order.alert_id == alert_id)).all()
    subjects = [str(alert_id), *(o.client_order_id for o in orders)]
    return {
        "alert_id": alert_id,
        "targets": [(t.account_id, t.outcome, t.order_id, t.reason) for t in s.exec(
            select(AlertTarget).where(AlertTarget.alert_id == alert_id)).all()],
        "orders": [(o.id, o.client_order_id, o.status, o.filled_quantity) for o in orders],
        "audit": [(e.created_at.isoformat(), e.action, e.subject) for e in s.exec(
            select(AuditEvent).where(col(AuditEvent.subject).in_(subjects))
            .order_by(col(AuditEvent.id))).all()],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=3, help="measured fan-out rounds per size")
    p.add_argument("--burst-rounds", type=int, default=5)
    p.add_argument("--database", default="postgres", choices=("postgres", "sqlite"))
    p.add_argument("--sections", default="fanout,bursts,flood")
    p.add_argument("--workers", type=int, default=4, help="RQ worker processes")
    p.add_argument("--threads", type=int, default=None,
                   help="jobs per worker process (ATS_WORKER_THREADS; default the product's)")
    args = p.parse_args(argv)
    if args.threads is not None:
        os.environ["ATS_WORKER_THREADS"] = str(args.threads)  # live_stack passes it on
    tmp = Path(tempfile.mkdtemp(prefix="ats-fanout-"))
    with _database(args.database, tmp) as url:
        if url is None:
            return 1
        result = _run(args, url, tmp)
    # Merged with the section's earlier keys: a run of one section keeps the others' figures.
    earlier = json.loads(RESULTS.read_text()).get("fanout", {}) if RESULTS.exists() else {}
    save("fanout", {**earlier, **result, "database": args.database})
    return 0


def _run(args: argparse.Namespace, database_url: str, tmp: Path) -> dict[str, Any]:
    with live_stack(database_url, tmp, args.workers) as stack:
        backend, sim_url = stack["server"].backend, stack["sim_url"]
        links = _world(sim_url, 53)
        sections = args.sections.split(",")
        out: dict[str, Any] = {}
        for mode in ("150ms", "angel") if "fanout" in sections else ():
            _pace(sim_url, mode)
            for name in ("fan10", "fan50"):
                got = _fanout(backend, sim_url, links[name], args.rounds)
                out.setdefault("fanout", {}).setdefault(mode, {})[name] = got
                print(f"fan-out {name} ({mode}): worst {got['worst']}, "
                      f"all filled once: {got['all_filled_once']}")
        _pace(sim_url, "angel")
        floor = _floor_place_order(sim_url)
        print(f"floor: one direct placeOrder {floor}")
        out["floor_place_order"] = floor
        if "bursts" in sections:
            burst = [links[f"burst{i}"] for i in range(8)]
            threads = os.environ.get("ATS_WORKER_THREADS", "4")
            key = f"bursts_8_on_{args.workers}_workers_{threads}_threads"
            out[key] = _bursts(backend, sim_url, burst, args.burst_rounds, floor,
                               stack["redis_url"])
            print(f"8 at once on {args.workers} workers: {out[key]}")
        if "flood" in sections:
            out["flood_100_in_1s"] = _flood(backend, sim_url, links["flood"])
            print(f"100 in 1 s: {out['flood_100_in_1s']}")
        return out


if __name__ == "__main__":
    raise SystemExit(main())
