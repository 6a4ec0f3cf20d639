"""Webhook ack and alert → order latency, against the floor, on the real process stack.

Run: ``.venv/bin/python -m bench.webhook_bench``. Once per database (`--databases`:
PostgreSQL, what production runs, on a fresh database at BENCH_PG_DSN's server; then the dev
default SQLite), starts `reflex run --backend-only` with its dev services (embedded Redis,
one RQ worker, the order-update consumer, monitor, feed, simulator), plus 3 more RQ workers
(4 in all), on a private data directory.

1. Webhook ack: open-loop load at 50, 200 and 500 alerts/s (unique ids) against the floor,
   Reflex's own `/ping` on the same server, at the same rates. Twice per rate: with every RQ
   worker paused (SIGSTOP: the ack alone; its jobs wait), then with the 4 workers draining the
   same alerts as they arrive (the whole machine busy). The queue is drained between phases.
2. Alert → order: entries on N links per path at once (`--bursts`: 1, 4 = one per worker,
   8 = more than the workers), then their exits, `--rounds` times after a warm-up round: from
   each alert's arrival to the broker call (the order's SUBMIT audit time plus half of the
   SUBMIT→ACCEPT round trip, i.e. when the simulator had the request) and to the fill; floor:
   one direct HTTP call to the simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.loadgen import open_loop
from bench.results import percentile, save

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.reflex_proc import ReflexProcess  # noqa: E402 - a shared dev harness

ROUND_SPACING_S = 1.2


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "ats_app.cli", *args, "--json"], env=env,
                         cwd=ROOT, capture_output=True, text=True, input=stdin, check=True)
    return json.loads(out.stdout)


def _setup(env: dict[str, str], sim_url: str, links_per_path: int) -> dict[str, Any]:
    """One user, a simulator account, `links_per_path` paper and live links (one open
    position per link, so that concurrent entries on different links all trade)."""
    user = "bench"
    _cli(env, "user", "create", "--username", user, "--password", "benchpassword",
         "--first", "B", "--last", "Ench")
    from ats_app.simulator.config import demo_account

    demo = demo_account()
    acc = _cli(env, "account", "add", "--user", user, "--label", "sim", "--client-id",
               demo.client_code, "--api-key", "bench", "--pin", demo.pin, "--totp-secret",
               demo.totp_secret, "--base-url", sim_url)
    links: dict[str, Any] = {"paper": [], "live": []}
    for i in range(links_per_path):
        links["paper"].append(_cli(env, "webhook", "create", "--user", user, "--name",
                                   f"paper{i}", "--sl", "5", "--paper"))
        links["live"].append(_cli(env, "webhook", "create", "--user", user, "--name",
                                  f"live{i}", "--account", str(acc["id"]), "--sl", "5"))
    # The benchmark measures speed, not the default risk limits (5 positions, 50 orders/day).
    _cli(env, "risk", "set", "--user", user, "--max-open-positions", "off",
         "--max-orders-per-day", "off")
    _cli(env, "bot", "start", "--user", user)
    return links


def _alert(link: dict[str, Any], tag: str) -> Any:
    def body(i: int) -> bytes:
        return json.dumps({"secret": link["secret"], "action": "buy", "symbol": "NIFTY",
                           "option": "CE", "strike": "ATM", "lots": 1,
                           "id": f"{tag}-{i}-{time.time_ns()}"}).encode()
    return body


def _order_latencies(link_id: int, since: Any, redis_url: str) -> dict[str, list[float]]:
    """From each entry alert's arrival (since `since`) to the broker call and to the fill
    (audit log)."""
    import redis
    from rq.exceptions import NoSuchJobError
    from rq.job import Job
    from sqlmodel import select

    from ats_app.engine.store.db import session_scope
    from ats_app.engine.store.models import Alert, AuditEvent, Order
    from ats_app.engine.store.queueing import alert_job_id

    rds = redis.Redis.from_url(redis_url)
    to_broker, to_fill, to_job_start, to_enqueued = [], [], [], []
    with session_scope() as s:
        alerts = {a.id: a for a in s.exec(select(Alert).where(Alert.link_id == link_id)
                                          .where(Alert.received_at >= since)).all()}
        entries = (select(Order).where(Order.link_id == link_id).where(Order.purpose == "ENTRY")
                   .where(Order.alert_id.in_(list(alerts))))  # type: ignore[attr-defined]
        for o in s.exec(entries).all():
            events = {e.action: e.created_at for e in s.exec(
                select(AuditEvent).where(AuditEvent.subject == o.client_order_id)).all()}
            received = alerts[o.alert_id].received_at
            try:  # where the time goes: before the job starts (ack, RQ) and inside it
                job = Job.fetch(alert_job_id(o.alert_id), connection=rds)
                if job.started_at is not None:
                    started = job.started_at.replace(tzinfo=received.tzinfo)  # RQ: naive UTC
                    to_job_start.append((started - received).total_seconds() * 1000)
                if job.enqueued_at is not None:  # the ack's part of that wait
                    enqueued = job.enqueued_at.replace(tzinfo=received.tzinfo)
                    to_enqueued.append((enqueued - received).total_seconds() * 1000)
            except NoSuchJobError:
                pass
            if "order.submit" in events and "order.accept" in events:
                # The simulator had the request halfway between SUBMIT and its answer.
                half_rtt = (events["order.accept"] - events["order.submit"]) / 2
                to_broker.append(((events["order.submit"] + half_rtt) - received)
                                 .total_seconds() * 1000)
            if "order.fill" in events:
                to_fill.append((events["order.fill"] - received).total_seconds() * 1000)
    return {"to_broker": to_broker, "to_fill": to_fill, "to_job_start": to_job_start,
            "to_enqueued": to_enqueued}


async def _post_all(urls_bodies: list[tuple[str, bytes]]) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        await asyncio.gather(*(client.post(u, content=b) for u, b in urls_bodies))


def _exit_body(link: dict[str, Any], tag: str) -> bytes:
    return json.dumps({"secret": link["secret"], "action": "exit", "symbol": "NIFTY",
                       "id": tag}).encode()


def _alert_to_order(backend: str, links: list[dict[str, Any]], rounds: int,
                    redis_url: str) -> dict[str, Any]:
    """Entries on every link at once (more than the 4 workers: they are all busy), then the
    exits, `rounds` times after one unmeasured warm-up round (it spreads each link's first
    contract, quote and session over the workers); latencies from each entry's arrival, out of
    the audit log."""
    from ats_app.engine.store.models import utcnow

    measured_since = utcnow()
    for r in range(-1, rounds):
        if r == 0:
            measured_since = utcnow()
        # Rounds start ROUND_SPACING_S apart: Angel allows an account 20 orders a second, and
        # a round places up to 16 (entries, then exits); back to back, the next round's
        # entries would wait for the rate limiter, which is not what is measured here.
        started = time.monotonic()
        since = utcnow()
        asyncio.run(_post_all([(f"{backend}/webhook/{lk['token']}", _alert(lk, f"e{r}")(i))
                               for i, lk in enumerate(links)]))
        _wait_positions(links, opened=True, since=since)
        # Unique exit ids: the same links run again in the next burst size.
        asyncio.run(_post_all([(f"{backend}/webhook/{lk['token']}",
                                _exit_body(lk, f"x{r}-{i}-{time.time_ns()}"))
                               for i, lk in enumerate(links)]))
        _wait_positions(links, opened=False)
        time.sleep(max(0.0, started + ROUND_SPACING_S - time.monotonic()))
    out: dict[str, Any] = {"alerts": rounds * len(links)}
    for lk in links:
        for k, v in _order_latencies(lk["id"], measured_since, redis_url).items():
            out.setdefault(k, []).extend(v)
    return {"alerts": out.pop("alerts"), "orders": len(out.get("to_fill", [])),
            **{f"{k}_{q}_ms": round(percentile(v, pct), 1) for k, v in out.items()
               for q, pct in (("p50", 50), ("p99", 99))}}


def _wait_positions(links: list[dict[str, Any]], *, opened: bool, since: Any = None,
                    timeout: float = 60) -> None:
    """opened: every link has had a position opened since `since` (it may already be closed
    again: a 5 % stop on the simulator's random walk can fire within the round); else: none
    of them has a position open or exiting."""
    from sqlmodel import func, select

    from ats_app.engine.store.db import session_scope
    from ats_app.engine.store.models import Position

    ids = [lk["id"] for lk in links]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        query = select(func.count(func.distinct(Position.link_id))).where(
            Position.link_id.in_(ids))  # type: ignore[attr-defined]
        if opened:
            query = query.where(Position.opened_at >= since) if since else query
        else:
            query = query.where(Position.status.in_(("OPEN", "EXITING")))  # type: ignore[attr-defined]
        with session_scope() as s:
            n = s.exec(query).one()
        if (n == len(ids)) if opened else (n == 0):
            return
        time.sleep(0.05)
    print(f"warning: positions still {'not open' if opened else 'open'} after {timeout}s")


def _warm_live(backend: str, link: dict[str, Any], env: dict[str, str]) -> None:
    """One live trade, so the account has a session and its order-update socket is up before
    measuring (in production the 08:45 pre-open login does this before the market opens)."""
    import redis

    from ats_app.engine.execution.order_updates import up_key
    from ats_app.engine.store.models import utcnow

    account_id = int(link["accounts"][0]["account_id"])
    since = utcnow()
    asyncio.run(_post_all([(f"{backend}/webhook/{link['token']}", _alert(link, "warm")(0))]))
    _wait_positions([link], opened=True, since=since)
    asyncio.run(_post_all([(f"{backend}/webhook/{link['token']}", _exit_body(link, "xwarm"))]))
    _wait_positions([link], opened=False)
    conn = redis.Redis.from_url(env["REDIS_URL"])
    deadline = time.monotonic() + 15
    while not conn.exists(up_key(account_id)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not conn.exists(up_key(account_id)):
        print("warning: the order-update socket is not up; live fills will be polled")


def _trading_workers(server: ReflexProcess, extra: list[subprocess.Popen]) -> list[Any]:
    """The server's own trading worker and the bench's (not the notifications worker)."""
    import psutil

    own = [p for p in psutil.Process(server.proc.pid).children(recursive=True)  # type: ignore[union-attr]
           if "worker" in p.cmdline() and "--queues" not in p.cmdline()]
    return own + [psutil.Process(w.pid) for w in extra]


@contextlib.contextmanager
def _paused(procs: list[Any]) -> Iterator[None]:
    for p in procs:
        p.suspend()
    try:
        yield
    finally:
        for p in procs:
            p.resume()


def _floor_direct(sim_url: str, n: int = 200) -> dict[str, float]:
    lat = []
    with httpx.Client() as c:
        for _ in range(n):
            t0 = time.perf_counter()
            c.get(f"{sim_url}/sim/health")
            lat.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": round(percentile(lat, 50), 2), "p99_ms": round(percentile(lat, 99), 2)}


def _use_server_database(env: dict[str, str]) -> None:
    """Read the benchmarked server's database from this process (results come from it)."""
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "ATS_DATA_DIR", "ATS_SECRET_KEY")})
    from ats_app.engine.core.config import reset_settings_cache

    reset_settings_cache()


def _wait_done(env: dict[str, str], expected: int, timeout: float = 180) -> None:
    from sqlmodel import func, select

    from ats_app.engine.store.db import session_scope
    from ats_app.engine.store.models import Alert

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope() as s:
            done = s.exec(select(func.count()).select_from(Alert)
                          .where(Alert.status.in_(("DONE", "REJECTED", "FAILED")))).one()  # type: ignore[attr-defined]
        if done >= expected:
            return
        time.sleep(0.5)


@contextlib.contextmanager
def _database(kind: str, tmp: Path) -> Iterator[str | None]:
    """A fresh database of `kind` for one run; None when PostgreSQL is not reachable."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'data' / 'ats.db'}"
        return
    import psycopg

    admin = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    name = f"ats_bench_{os.getpid()}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL not reachable at {admin} ({exc}); skipping that run")
        yield None
        return
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--rates", default="50,200,500")
    p.add_argument("--bursts", default="1,4,8",
                   help="alerts arriving together, one per link (8: more than the 4 workers)")
    p.add_argument("--rounds", type=int, default=5, help="entry/exit rounds per path")
    p.add_argument("--databases", default="postgres,sqlite",
                   help="production's PostgreSQL and the dev default SQLite, one run each")
    args = p.parse_args(argv)
    results: dict[str, Any] = {}
    for kind in args.databases.split(","):
        tmp = Path(tempfile.mkdtemp(prefix="ats-bench-"))
        with _database(kind, tmp) as url:
            if url is not None:
                print(f"--- {kind}")
                results[kind] = _run(args, url, tmp)
    save("webhook", {**results, "workers": 4, "bursts": args.bursts,
                     "rounds": args.rounds, "seconds_per_rate": args.seconds})
    return 0


@contextlib.contextmanager
def live_stack(database_url: str, tmp: Path, workers: int = 4) -> Iterator[dict[str, Any]]:
    """`reflex run --backend-only` with its dev services (one RQ worker among them) in live
    mode at 10:00 IST on a trading day, plus `workers - 1` more RQ workers; this process
    reads the server's database and Redis. Yields server, env, redis_url, sim_url, workers."""
    from cryptography.fernet import Fernet

    extra = {"ATS_SECRET_KEY": Fernet.generate_key().decode(), "TRADING_MODE": "live",
             "WEBHOOK_RATE_PER_MIN": "1000000", "ATS_IP_ECHO_URL": "",
             "ATS_FAKE_NOW": "2026-12-02T10:00:00+05:30",  # inside NSE hours, any wall clock
             "DATABASE_URL": database_url,
             # the workers' niceness under test (the server's own environment is not passed on)
             "ATS_WORKER_NICE": os.environ.get("ATS_WORKER_NICE", "5"),
             # jobs each worker process runs at once (the product's default unless set)
             "ATS_WORKER_THREADS": os.environ.get("ATS_WORKER_THREADS", "4")}
    server = ReflexProcess(tmp / "data", backend_only=True, env=extra)
    server.start(timeout=180)
    procs: list[subprocess.Popen] = []
    try:
        httpx.get(f"{server.backend}/healthz", timeout=30)
        redis_url = (tmp / "data" / "redis" / "redis.url").read_text().strip()
        env = {**server.env, "REDIS_URL": redis_url}
        sim_url = f"http://127.0.0.1:{server.simulator_port}"
        server.wait_for(f"{sim_url}/sim/health", 60)
        _use_server_database(env)
        os.environ["REDIS_URL"] = redis_url  # this process notifies and caches links too
        procs = [subprocess.Popen([sys.executable, "-m", "ats_app.cli", "worker"], env=env,
                                  cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for _ in range(workers - 1)]  # the dev services run one
        yield {"server": server, "env": env, "redis_url": redis_url, "sim_url": sim_url,
               "workers": procs}
    finally:
        for w in procs:
            w.terminate()
        for w in procs:
            w.wait(10)
        server.stop()
        from ats_app.engine.store.db import dispose_engines

        dispose_engines()  # this process read the server's database: let it be dropped


def _run(args: argparse.Namespace, database_url: str, tmp: Path) -> dict[str, Any]:
    with live_stack(database_url, tmp) as stack:
        server, env, redis_url = stack["server"], stack["env"], stack["redis_url"]
        sim_url, workers = stack["sim_url"], stack["workers"]
        links = _setup(env, sim_url, max(int(b) for b in args.bursts.split(",")))
        # Warm-up: first requests import code paths and fill caches (scrip master, sessions).
        asyncio.run(open_loop(f"{server.backend}/webhook/{links['paper'][0]['token']}", 20, 1.0,
                               _alert(links["paper"][0], "warm")))
        _warm_live(server.backend, links["live"][0], env)
        ack: dict[str, Any] = {}
        hook_url = f"{server.backend}/webhook/{links['paper'][0]['token']}"
        sent = 20  # the warm-up's
        for rate in [int(r) for r in args.rates.split(",")]:
            floor = asyncio.run(open_loop(f"{server.backend}/ping", rate, args.seconds, None))
            ack[str(rate)] = {"floor_ping": floor}
            for phase in ("webhook_workers_paused", "webhook"):
                pause = _paused(_trading_workers(server, workers)) if phase != "webhook" \
                    else contextlib.nullcontext()
                with pause:
                    hook = asyncio.run(open_loop(hook_url, rate, args.seconds,
                                                 _alert(links["paper"][0], f"{phase}{rate}")))
                sent += hook["sent"]
                _wait_done(env, sent)  # each phase starts with an empty queue
                hook["ratio_p99_to_floor"] = round(hook["p99_ms"] / max(floor["p99_ms"], 1e-6),
                                                   2)
                ack[str(rate)][phase] = hook
                print(f"ack @{rate}/s ({phase}): webhook p50 {hook['p50_ms']} ms p99 "
                      f"{hook['p99_ms']} ms | floor p99 {floor['p99_ms']} ms | ratio "
                      f"{hook['ratio_p99_to_floor']}")
        # The load test left link 0's position open: close it so every round starts flat.
        asyncio.run(_post_all([(f"{server.backend}/webhook/{links['paper'][0]['token']}",
                                _exit_body(links["paper"][0], "x-load"))]))
        _wait_positions(links["paper"], opened=False)
        paths: dict[str, Any] = {"floor_direct_http": _floor_direct(sim_url), "bursts": {}}
        for burst in [int(b) for b in args.bursts.split(",")]:
            for name in ("paper", "live"):
                got = _alert_to_order(server.backend, links[name][:burst], args.rounds,
                                      redis_url)
                paths["bursts"].setdefault(str(burst), {})[name] = got
                if burst == len(links[name]):
                    paths[name] = got  # the figures the goal is read against
                print(f"alert→order {name}, {burst} at once: {got}")
        return {"ack": ack, "alert_to_order": paths}


if __name__ == "__main__":
    raise SystemExit(main())
