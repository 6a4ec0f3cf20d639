"""Webhook ack and alert → order latency, against the floor, on the real process stack.

Run: ``.venv/bin/python -m bench.webhook_bench``. Starts `reflex run --backend-only` (the
production server stack) with its dev services (embedded Redis, one RQ worker, monitor,
simulator), plus 3 more RQ workers (4 busy in all), on a private data directory.

1. Webhook ack: open-loop load at 50, 200 and 500 alerts/s (unique ids) against the floor,
   Reflex's own `/ping` on the same server, at the same rates.
2. Alert → order: for paper and live links, from the webhook request to the broker call
   (the order's SUBMIT audit time plus half of the SUBMIT→ACCEPT round trip, i.e. when the
   simulator had the request) and to the paper fill; floor: one direct HTTP call to the
   simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.results import percentile, save

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.reflex_proc import ReflexProcess  # noqa: E402 - a shared dev harness


async def _open_loop(url: str, rate: int, seconds: float, body: Any) -> dict[str, float]:
    """Fire requests on a fixed schedule (not waiting for answers): latency per request."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:

        async def one(i: int) -> None:
            nonlocal errors
            payload = body(i) if callable(body) else None
            t0 = time.perf_counter()
            try:
                if payload is None:
                    r = await client.get(url)
                else:
                    r = await client.post(url, content=payload)
                if r.status_code >= 300 and r.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append((time.perf_counter() - t0) * 1000)

        n = int(rate * seconds)
        start = time.perf_counter()
        tasks = []
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {"rate_target": rate, "sent": n, "achieved_per_s": round(n / elapsed, 1),
            "p50_ms": round(percentile(latencies, 50), 2),
            "p99_ms": round(percentile(latencies, 99), 2), "errors": errors}


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "ats_app.cli", *args, "--json"], env=env,
                         cwd=ROOT, capture_output=True, text=True, input=stdin, check=True)
    return json.loads(out.stdout)


def _setup(env: dict[str, str], sim_url: str) -> dict[str, Any]:
    user = "bench"
    _cli(env, "user", "create", "--username", user, "--password", "benchpassword",
         "--first", "B", "--last", "Ench")
    from ats_app.engine.simulator.config import demo_account

    demo = demo_account()
    acc = _cli(env, "account", "add", "--user", user, "--label", "sim", "--client-id",
               demo.client_code, "--api-key", "bench", "--pin", demo.pin, "--totp-secret",
               demo.totp_secret, "--base-url", sim_url)
    paper = _cli(env, "webhook", "create", "--user", user, "--name", "paper", "--sl", "5",
                 "--paper")
    live = _cli(env, "webhook", "create", "--user", user, "--name", "live", "--account",
                str(acc["id"]), "--sl", "5")
    _cli(env, "bot", "start", "--user", user)
    return {"paper": paper, "live": live}


def _alert(link: dict[str, Any], tag: str) -> Any:
    def body(i: int) -> bytes:
        return json.dumps({"secret": link["secret"], "action": "buy", "symbol": "NIFTY",
                           "option": "CE", "strike": "ATM", "lots": 1,
                           "id": f"{tag}-{i}-{time.time_ns()}"}).encode()
    return body


def _order_latencies(env: dict[str, str], link_id: int) -> dict[str, float]:
    """From the alert's arrival to the broker call and to the fill, out of the audit log."""
    from sqlmodel import select

    from ats_app.engine.db import session_scope
    from ats_app.engine.models import Alert, AuditEvent, Order

    to_broker, to_fill = [], []
    with session_scope() as s:
        alerts = {a.id: a for a in s.exec(select(Alert).where(Alert.link_id == link_id)).all()}
        entries = select(Order).where(Order.link_id == link_id).where(Order.purpose == "ENTRY")
        for o in s.exec(entries).all():
            events = {e.action: e.created_at for e in s.exec(
                select(AuditEvent).where(AuditEvent.subject == o.client_order_id)).all()}
            received = alerts[o.alert_id].received_at
            if "order.submit" in events and "order.accept" in events:
                half_rtt = (events["order.accept"] - events["order.submit"]) / 2
                to_broker.append(((events["order.submit"] + half_rtt) - received)
                                 .total_seconds() * 1000)
            if "order.fill" in events:
                to_fill.append((events["order.fill"] - received).total_seconds() * 1000)
    return {"orders": len(to_fill), "to_broker_p50_ms": round(percentile(to_broker, 50), 1),
            "to_broker_p99_ms": round(percentile(to_broker, 99), 1),
            "to_fill_p50_ms": round(percentile(to_fill, 50), 1),
            "to_fill_p99_ms": round(percentile(to_fill, 99), 1)}


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
    from ats_app.engine.config import reset_settings_cache

    reset_settings_cache()


def _wait_done(env: dict[str, str], expected: int, timeout: float = 180) -> None:
    from sqlmodel import func, select

    from ats_app.engine.db import session_scope
    from ats_app.engine.models import Alert

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope() as s:
            done = s.exec(select(func.count()).select_from(Alert)
                          .where(Alert.status.in_(("DONE", "REJECTED", "FAILED")))).one()  # type: ignore[attr-defined]
        if done >= expected:
            return
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--rates", default="50,200,500")
    p.add_argument("--orders", type=int, default=40, help="alerts per path for alert→order")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="ats-bench-"))
    from cryptography.fernet import Fernet

    extra = {"ATS_SECRET_KEY": Fernet.generate_key().decode(), "TRADING_MODE": "live",
             "WEBHOOK_RATE_PER_MIN": "1000000", "ATS_IP_ECHO_URL": "",
             "ATS_FAKE_NOW": "2026-12-02T10:00:00+05:30",  # inside NSE hours, any wall clock
             "DATABASE_URL": f"sqlite:///{tmp / 'data' / 'ats.db'}"}
    server = ReflexProcess(tmp / "data", backend_only=True, env=extra)
    server.start(timeout=180)
    workers: list[subprocess.Popen] = []
    try:
        httpx.get(f"{server.backend}/healthz", timeout=30)
        redis_url = (tmp / "data" / "redis" / "redis.url").read_text().strip()
        env = {**server.env, "REDIS_URL": redis_url}
        sim_url = f"http://127.0.0.1:{server.simulator_port}"
        for _ in range(60):
            try:
                if httpx.get(f"{sim_url}/sim/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        links = _setup(env, sim_url)
        _use_server_database(env)
        workers = [subprocess.Popen([sys.executable, "-m", "ats_app.cli", "worker"], env=env,
                                    cwd=ROOT, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL) for _ in range(3)]
        # Warm-up: first requests import code paths and fill caches (scrip master, sessions).
        asyncio.run(_open_loop(f"{server.backend}/webhook/{links['paper']['token']}", 20, 1.0,
                               _alert(links["paper"], "warm")))
        ack: dict[str, Any] = {}
        for rate in [int(r) for r in args.rates.split(",")]:
            floor = asyncio.run(_open_loop(f"{server.backend}/ping", rate, args.seconds, None))
            hook = asyncio.run(_open_loop(f"{server.backend}/webhook/{links['paper']['token']}",
                                          rate, args.seconds, _alert(links["paper"], f"r{rate}")))
            hook["ratio_p99_to_floor"] = round(hook["p99_ms"] / max(floor["p99_ms"], 1e-6), 2)
            ack[str(rate)] = {"webhook": hook, "floor_ping": floor}
            print(f"ack @{rate}/s: webhook p50 {hook['p50_ms']} ms p99 {hook['p99_ms']} ms | "
                  f"floor p99 {floor['p99_ms']} ms | ratio {hook['ratio_p99_to_floor']}")
        # Let the queue of load-test alerts drain before timing single alerts.
        total_alerts = sum(v["webhook"]["sent"] for v in ack.values()) + 20
        _wait_done(env, total_alerts)
        paths: dict[str, Any] = {"floor_direct_http": _floor_direct(sim_url)}
        for name in ("paper", "live"):
            for i in range(args.orders):
                httpx.post(f"{server.backend}/webhook/{links[name]['token']}",
                           content=_alert(links[name], f"o{name}")(i))
                # One open position per link: exit it so that the next entry trades.
                time.sleep(0.3)
                httpx.post(f"{server.backend}/webhook/{links[name]['token']}",
                           content=json.dumps({"secret": links[name]["secret"],
                                               "action": "exit", "symbol": "NIFTY",
                                               "id": f"x{name}{i}"}))
                time.sleep(0.25)
            time.sleep(3)
            paths[name] = _order_latencies(env, links[name]["id"])
            print(f"alert→order {name}: {paths[name]}")
        save("webhook", {"ack": ack, "alert_to_order": paths, "workers": 4,
                         "seconds_per_rate": args.seconds})
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(10)
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
