"""Soak: trading under load with faults at random, then an oracle over three records.

Run: ``make soak MINUTES=60`` (or ``.venv/bin/python -m bench.soak --minutes 3 --seed 7``).

The stack is production's shape, every process separate: `reflex run --backend-only` (the
webhook; ATS_SPAWN_SERVICES=false), `--workers` RQ workers, a notifications worker, the
monitor, the feed, the order-update consumer, a redis-server of our own (AOF on, as the deploy
guide sets it), a fresh PostgreSQL database (BENCH_PG_DSN's server) and the SmartAPI simulator
at Angel's pace (`--latency angel`). Several users, each with several simulated Angel accounts
and links (one to three accounts each, lot multipliers), trade live against the simulator.

Four threads, each drawing from its own generator seeded from `--seed`:
- load: entries, exits, duplicates (the same body again), bursts (entries on several links at
  once), refusals (wrong secret, unknown key, bad lots, unknown token, a risk limit) and
  hostile bodies (deep nesting, NUL, a 2099 time, OTM999, a 1999 expiry, repeated keys, an
  unknown symbol, not JSON); every request and its answer logged (``sent.jsonl``);
- prices: pins an open position's option below every stop (crash) or above every target
  (spike) through the simulator's control API, holds it, lets it go (trails then fire on
  the way back); the positions open at the pin are the exits due;
- faults: SIGKILL of a worker, the monitor, the feed or the order-update consumer (restarted
  after 0.5-3 s, as systemd would); Redis killed and restarted; every PostgreSQL connection to
  the database terminated; the simulator's 5xx, empty bodies, lost answers, timeouts,
  rate-limit refusals, invalid tokens, expired sessions and dropped sockets;
- a supervisor restarting whatever died.

Then the faults stop, the system settles, and the oracle compares what was sent (the log),
what we recorded (alerts, targets, orders, positions) and the simulator's own book: alerts
sent / accepted / refused by reason, orders expected / placed / doubled / missing, exits due /
done / late / missed with tick → exit order p50/p99, positions where the books disagree;
then every link is exited and both books must be flat. Exit status 1 on any loss, double,
disagreement, missed exit, hostile body traded or 5xx; the seed reproduces the schedule.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.results import percentile, save
from bench.webhook_bench import _database

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ats_app.engine.services.embedded_redis import free_port  # noqa: E402
from tests.reflex_proc import ReflexProcess  # noqa: E402 - a shared dev harness

PIN = "1234"
TOTP = "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"
FINAL_ALERT = ("DONE", "REJECTED", "FAILED", "IGNORED")
FINAL_ORDER = ("FILLED", "REJECTED", "CANCELLED", "FAILED")
LATE_EXIT_S = 5.0  # an exit order later than this after its tick is "late" (reported)
PIN_HOLD_S = 20.0  # a crossed level stays crossed this long: longer than any fault's outage


def log(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- processes ----------------------------------------------------------------------------

@dataclass
class Service:
    name: str
    args: list[str]
    proc: subprocess.Popen | None = None
    down_until: float = 0.0  # killed on purpose: restarted after this monotonic time
    restarts: int = 0
    kills: int = 0


@dataclass
class Stack:
    tmp: Path
    env: dict[str, str]
    services: dict[str, Service] = field(default_factory=dict)
    redis_port: int = 0
    redis_proc: subprocess.Popen | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: bool = False

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        out = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        return proc

    def start_redis(self) -> None:
        data = self.tmp / "redis"
        data.mkdir(exist_ok=True)
        self.redis_proc = self._spawn("redis", [
            "redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
            "--dir", str(data), "--appendonly", "yes", "--appendfsync", "everysec",
            "--save", "", "--protected-mode", "no"])
        import redis

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                # LOADING is an error until the AOF is read back
                if redis.Redis(port=self.redis_port, socket_timeout=1).ping():
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def restart_redis(self, down_s: float) -> None:
        assert self.redis_proc is not None
        os.killpg(self.redis_proc.pid, signal.SIGKILL)
        self.redis_proc.wait(10)
        time.sleep(down_s)
        self.start_redis()

    def add(self, name: str, module_args: list[str]) -> None:
        svc = Service(name, [sys.executable, "-m", *module_args])
        svc.proc = self._spawn(name, svc.args)
        self.services[name] = svc

    def kill(self, name: str, down_s: float) -> None:
        with self.lock:
            svc = self.services[name]
            if svc.proc is not None and svc.proc.poll() is None:
                os.killpg(svc.proc.pid, signal.SIGKILL)
                svc.proc.wait(10)
            svc.down_until = time.monotonic() + down_s
            svc.kills += 1

    def supervise(self) -> None:
        """Restart what died (killed on purpose: once its outage is over), like systemd."""
        while not self.stopping:
            with self.lock:
                for svc in self.services.values():
                    if svc.proc is not None and svc.proc.poll() is None:
                        continue
                    if time.monotonic() < svc.down_until or self.stopping:
                        continue
                    svc.proc = self._spawn(svc.name, svc.args)
                    svc.restarts += 1
            time.sleep(0.2)

    def unexpected_deaths(self) -> dict[str, int]:
        return {s.name: s.restarts - s.kills for s in self.services.values()
                if s.restarts > s.kills}

    def stop(self) -> None:
        self.stopping = True
        with self.lock:
            for svc in self.services.values():
                if svc.proc is not None and svc.proc.poll() is None:
                    os.killpg(svc.proc.pid, signal.SIGTERM)
            for svc in self.services.values():
                if svc.proc is None:
                    continue
                try:
                    svc.proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(svc.proc.pid, signal.SIGKILL)
                    svc.proc.wait(5)
        if self.redis_proc is not None and self.redis_proc.poll() is None:
            self.redis_proc.terminate()
            self.redis_proc.wait(10)


# --- database reads that survive a terminated connection ----------------------------------

def db_read(fn: Callable[[Any], Any], tries: int = 5) -> Any:
    from sqlalchemy.exc import DBAPIError

    from ats_app.engine.store.db import session_scope

    for i in range(tries):
        try:
            with session_scope() as s:
                return fn(s)
        except DBAPIError:
            if i == tries - 1:
                raise
            time.sleep(0.3)
    return None


# --- the world: users, accounts, links ----------------------------------------------------

@dataclass
class Link:
    id: int
    token: str
    secret: str
    user: str
    underlying: str
    accounts: list[int]  # our account ids
    sl: float
    target: float | None
    trail: float | None


def _sim(sim_url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    r = httpx.request(method, f"{sim_url}{path}", json=body, timeout=15)
    r.raise_for_status()
    return r.json()


def build_world(sim_url: str, rng: random.Random, n_users: int) -> tuple[list[Link],
                                                                         dict[int, str]]:
    """n_users users with two accounts each and three links: one account, both accounts (the
    second at 2 lots), the second account. The last user has a two-position limit, so some
    entries are refused by the risk gate."""
    from ats_app.engine.risk import bot, gate
    from ats_app.engine.store.db import session_scope
    from ats_app.engine.tenants import accounts, users, webhooks

    links: list[Link] = []
    clients: dict[int, str] = {}
    for u in range(n_users):
        name = f"soak{u}"
        codes = [f"SK{u}{a}" for a in range(2)]
        for code in codes:
            _sim(sim_url, "POST", "/sim/accounts", {"clientcode": code, "pin": PIN,
                                                    "totp_secret": TOTP, "cash": 1e10})
        with session_scope() as s:
            uid = users.create_user(s, name, "soakpassword", "S", f"Oak{u}").id
            ids = []
            for i, code in enumerate(codes):
                acc = accounts.add_account(s, uid, label=f"{name}-{i}", client_id=code,
                                           api_key=f"k{code}", pin=PIN, totp_secret=TOTP,
                                           base_url=sim_url)
                ids.append(acc.id)
                clients[acc.id] = code
            limit = 2 if u == n_users - 1 else None
            gate.set_limits(s, uid, max_open_positions=limit, max_orders_per_day=None)
            plan = [[(ids[0], 1)], [(ids[0], 1), (ids[1], 2)], [(ids[1], 1)]]
            for i, members in enumerate(plan):
                sl = rng.choice([20.0, 30.0, 40.0])
                target = rng.choice([None, 40.0, 60.0])
                trail = rng.choice([None, 10.0, 15.0]) if target is None else \
                    rng.choice([None, 15.0])
                link, secret = webhooks.create_link(
                    s, uid, name=f"{name}-l{i}", strategy_id=None, stop_loss_pct=sl,
                    target_pct=target, trailing_stop_pct=trail, paper=False,
                    accounts=[webhooks.LinkAccount(a, n) for a, n in members])  # type: ignore[arg-type]
                links.append(Link(link.id, link.token, secret, name,  # type: ignore[arg-type]
                                  "BANKNIFTY" if i == 1 else "NIFTY", [a for a, _ in members],
                                  sl, target, trail))
            bot.set_running(s, uid, True)
    return links, clients


# --- load ---------------------------------------------------------------------------------

class Load:
    """The load generator: sends, and logs every request and its answer."""

    def __init__(self, backend: str, links: list[Link], rng: random.Random, log_path: Path):
        self.backend = backend
        self.links = links
        self.rng = rng
        self.client = httpx.Client(timeout=10)
        self.log_path = log_path
        self.sent: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.n = 0
        self.pool = ThreadPoolExecutor(8)

    def _id(self) -> str:
        with self.lock:
            self.n += 1
            return f"s{self.n}-{time.time_ns() % 10**9}"

    def post(self, kind: str, link: Link | None, raw: bytes, expect: Any,
             token: str | None = None, **extra: Any) -> dict[str, Any]:
        url = f"{self.backend}/webhook/{token or (link.token if link else 'x')}"
        t0 = time.time()
        rec: dict[str, Any] = {"t": t0, "kind": kind, "link": link.id if link else None,
                               "expect": expect, **extra}
        try:
            r = self.client.post(url, content=raw)
            rec["status"] = r.status_code
            with contextlib.suppress(ValueError):
                answer = r.json()
                rec["alert_id"] = answer.get("alert_id")
                rec["answer"] = answer.get("status")
                rec["error"] = answer.get("error")
                rec["field"] = answer.get("field")
        except httpx.HTTPError as exc:
            rec["status"] = None
            rec["error"] = f"no answer: {type(exc).__name__}"
        rec["ms"] = round((time.time() - t0) * 1000, 1)
        with self.lock:
            self.sent.append(rec)
            with open(self.log_path, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
        return rec

    def _entry_body(self, link: Link, **over: Any) -> dict[str, Any]:
        return {"secret": link.secret, "action": "buy", "symbol": link.underlying,
                "option": self.rng.choice(["CE", "PE"]),
                "strike": self.rng.choice(["ATM", "ATM", "OTM1", "ITM1"]),
                "expiry": self.rng.choice(["nearest", "nearest", "next"]),
                "lots": 1, "id": self._id(), **over}

    def entry(self, link: Link | None = None) -> None:
        link = link or self.rng.choice(self.links)
        body = json.dumps(self._entry_body(link)).encode()
        self.post("entry", link, body, 202, body=body.decode())

    def exit(self) -> None:
        link = self.rng.choice(self.links)
        body = json.dumps({"secret": link.secret, "action": self.rng.choice(["exit", "sell"]),
                           "symbol": link.underlying, "id": self._id()}).encode()
        self.post("exit", link, body, 202, body=body.decode())

    def duplicate(self) -> None:
        with self.lock:
            earlier = [r for r in self.sent if r["kind"] in ("entry", "exit")
                       and r.get("status") == 202][-30:]
        if not earlier:
            return self.entry()
        first = self.rng.choice(earlier)
        link = next(lk for lk in self.links if lk.id == first["link"])
        self.post("duplicate", link, first["body"].encode(), 200,
                  first_alert_id=first["alert_id"])
        return None

    def burst(self) -> None:
        chosen = self.rng.sample(self.links, self.rng.randint(3, min(6, len(self.links))))
        list(self.pool.map(self.entry, chosen))

    def refusal(self) -> None:
        link = self.rng.choice(self.links)
        kind = self.rng.choice(["bad_secret", "unknown_key", "bad_lots", "bad_action",
                                "unknown_token"])
        body = self._entry_body(link)
        if kind == "bad_secret":
            body["secret"] = "wrong"
            expect = 401
        elif kind == "unknown_key":
            body["qty"] = 1
            expect = 422
        elif kind == "bad_lots":
            body["lots"] = 0
            expect = 422
        elif kind == "bad_action":
            body["action"] = "hold"
            expect = 422
        else:
            self.post("refusal", None, json.dumps(body).encode(), 404,
                      token="nosuchtoken0123456789abcdef", case=kind)
            return
        self.post("refusal", link, json.dumps(body).encode(), expect, case=kind)

    def hostile(self) -> None:
        link = self.rng.choice(self.links)
        case = self.rng.choice(["nested", "nul", "future", "otm999", "expiry1999",
                                "dup_keys", "not_json", "unknown_symbol"])
        b = self._entry_body(link)
        expect: Any = 422
        if case == "nested":
            raw, expect = ("[" * 5000 + "]" * 5000).encode(), 400  # 10 KB: under the size cap
        elif case == "not_json":
            raw, expect = b"{not json", 400
        elif case == "nul":
            raw = json.dumps({**b, "symbol": "NIF\u0000TY"}).encode()
        elif case == "future":
            raw = json.dumps({**b, "time": "2099-01-01T10:00:00Z"}).encode()
        elif case == "otm999":
            raw = json.dumps({**b, "strike": "OTM999"}).encode()
        elif case == "expiry1999":
            raw = json.dumps({**b, "expiry": "1999-01-28"}).encode()
        elif case == "unknown_symbol":
            # refused at intake once the master is cached; else accepted and failed in the job
            raw, expect = json.dumps({**b, "symbol": "NOSUCHSYM"}).encode(), [422, 202]
        else:  # dup_keys: the secret twice, then the action twice
            raw = (json.dumps(b)[:-1] + ', "action": "sell"}').encode()
        self.post("hostile", link, raw, expect, case=case)

    def step(self) -> None:
        r = self.rng.random()
        if r < 0.42:
            self.entry()
        elif r < 0.66:
            self.exit()
        elif r < 0.74:
            self.duplicate()
        elif r < 0.80:
            self.burst()
        elif r < 0.88:
            self.refusal()
        else:
            self.hostile()


# --- prices -------------------------------------------------------------------------------

def _open_positions(s: Any) -> list[Any]:
    from sqlmodel import select

    from ats_app.engine.store.models import Position

    return list(s.exec(select(Position).where(Position.status == "OPEN")).all())


class Prices:
    """Crosses open positions' levels on purpose; each event names the exits it makes due."""

    def __init__(self, sim_url: str, rng: random.Random) -> None:
        self.sim_url = sim_url
        self.rng = rng
        self.events: list[dict[str, Any]] = []
        self.pinned: set[str] = set()

    def pin(self, token: str, ltp: float | None) -> None:
        _sim(self.sim_url, "POST", "/sim/price", {"token": token, "ltp": ltp})
        (self.pinned.add if ltp is not None else self.pinned.discard)(token)

    def event(self, stop: threading.Event) -> None:
        rows = db_read(lambda s: [(p.id, p.symbol_token, p.stop_paise, p.target_paise)
                                  for p in _open_positions(s)])
        by_token: dict[str, list[tuple[int, int | None, int | None]]] = defaultdict(list)
        for pid, tok, stop_p, target_p in rows:
            by_token[tok].append((pid, stop_p, target_p))
        if not by_token:
            return
        token = self.rng.choice(sorted(by_token))
        held = by_token[token]
        with_target = [(pid, t) for pid, _, t in held if t is not None]
        if with_target and self.rng.random() < 0.5:
            kind, price = "spike", max(t for _, t in with_target) / 100 * 1.3
            due = [pid for pid, _ in with_target]
        else:
            stops = [st for _, st, _ in held if st is not None]
            if not stops:
                return
            kind, price = "crash", max(0.05, min(stops) / 100 * 0.7)
            due = [pid for pid, st, _ in held if st is not None]
        at = time.time()
        self.pin(token, round(price, 2))
        self.events.append({"t": at, "token": token, "kind": kind, "price": round(price, 2),
                            "due": due})
        stop.wait(PIN_HOLD_S)
        self.pin(token, None)  # back to the model's price: trails fire on the way back

    def release_all(self) -> None:
        for token in list(self.pinned):
            with contextlib.suppress(httpx.HTTPError):
                self.pin(token, None)


# --- faults -------------------------------------------------------------------------------

PROCESS_FAULTS = ("kill_worker", "kill_monitor", "kill_feed", "kill_consumer",
                  "restart_redis", "kill_pg")
SIM_FAULTS = ("http500", "empty", "lost_answer", "timeout", "rate_limit", "invalid_token",
              "expire", "ws_drop")


class Faults:
    def __init__(self, stack: Stack, sim_url: str, admin_dsn: str, db_name: str,
                 clients: list[str], rng: random.Random, workers: list[str]) -> None:
        self.stack, self.sim_url, self.admin_dsn, self.db_name = stack, sim_url, admin_dsn, \
            db_name
        self.clients, self.rng, self.workers = clients, rng, workers
        self.done: list[dict[str, Any]] = []

    def one(self) -> None:
        rng = self.rng
        kind = rng.choice(PROCESS_FAULTS + SIM_FAULTS)
        detail: dict[str, Any] = {}
        down = round(rng.uniform(0.5, 3.0), 2)
        if kind == "kill_worker":
            name = rng.choice(self.workers)
            self.stack.kill(name, down)
            detail = {"service": name, "down_s": down}
        elif kind in ("kill_monitor", "kill_feed", "kill_consumer"):
            name = {"kill_monitor": "monitor", "kill_feed": "feed",
                    "kill_consumer": "order-updates"}[kind]
            self.stack.kill(name, down)
            detail = {"service": name, "down_s": down}
        elif kind == "restart_redis":
            self.stack.restart_redis(down)
            detail = {"down_s": down}
        elif kind == "kill_pg":
            import psycopg

            with psycopg.connect(self.admin_dsn, autocommit=True) as c:
                n = c.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE datname = %s AND pid <> pg_backend_pid()",
                              (self.db_name,)).fetchone()
            detail = {"terminated": n[0] if n else 0}
        elif kind == "expire":
            client = rng.choice(self.clients)
            _sim(self.sim_url, "POST", "/sim/expire", {"clientcode": client})
            detail = {"client": client}
        elif kind == "ws_drop":
            route = rng.choice(["*", "/smart-stream", "/order-update"])
            detail = _sim(self.sim_url, "POST", "/sim/faults", {"kind": "ws_drop",
                                                               "route": route})
        else:
            route = rng.choice({
                "http500": ["placeOrder", "getOrderBook", "loginByPassword"],
                "empty": ["placeOrder", "getOrderBook"],
                "lost_answer": ["placeOrder"],
                "timeout": ["placeOrder", "getOrderBook", "getLtpData"],
                "rate_limit": ["placeOrder", "getOrderBook"],
                "invalid_token": ["placeOrder", "getOrderBook"],
            }[kind])
            spec: dict[str, Any] = {"route": route, "kind": kind, "times": rng.randint(1, 3)}
            if kind in ("lost_answer", "timeout"):
                spec["ms"] = 8000  # past the SDK's 7 s timeout: the answer never arrives
            if rng.random() < 0.5:
                spec["client"] = rng.choice(self.clients)
            _sim(self.sim_url, "POST", "/sim/faults", spec)
            detail = spec
        self.done.append({"t": time.time(), "fault": kind, **detail})


# --- the run ------------------------------------------------------------------------------

def _loop(stop: threading.Event, gap: tuple[float, float], rng: random.Random,
          action: Callable[[], None], name: str, errors: list[str]) -> None:
    while not stop.wait(rng.uniform(*gap)):
        try:
            action()
        except Exception as exc:
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
            log(f"{name} error: {exc}")


@contextlib.contextmanager
def soak_stack(tmp: Path, database_url: str, workers: int,
               seed: int) -> Iterator[tuple[Stack, ReflexProcess, str]]:
    from cryptography.fernet import Fernet

    redis_port, sim_port = free_port(), free_port()
    extra = {
        "ATS_SECRET_KEY": Fernet.generate_key().decode(), "TRADING_MODE": "live",
        "WEBHOOK_RATE_PER_MIN": "1000000", "ATS_IP_ECHO_URL": "",
        "ATS_FAKE_NOW": "2026-12-02T10:00:00+05:30",  # inside NSE hours, any wall clock
        "DATABASE_URL": database_url, "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "ATS_SPAWN_SERVICES": "false", "ATS_SIMULATOR": "true", "SIMULATOR_PORT": str(sim_port),
        "ATS_WORKER_NICE": os.environ.get("ATS_WORKER_NICE", "5"),
        "ATS_WORKER_THREADS": os.environ.get("ATS_WORKER_THREADS", "4"),
    }
    server = ReflexProcess(tmp / "data", backend_only=True, env=extra)
    stack = Stack(tmp, server.env, redis_port=redis_port)
    stack.start_redis()
    sim = stack._spawn("simulator", [sys.executable, "-m", "ats_app.cli", "sim", "--port",
                                     str(sim_port), "--latency", "angel", "--seed", str(seed)])
    sim_url = f"http://127.0.0.1:{sim_port}"
    supervisor = threading.Thread(target=stack.supervise, daemon=True)
    try:
        _wait_http(f"{sim_url}/sim/health", 60)
        server.start(timeout=240)  # migrates the fresh database
        for k in ("DATABASE_URL", "ATS_DATA_DIR", "ATS_SECRET_KEY", "REDIS_URL"):
            os.environ[k] = server.env[k]
        from ats_app.engine.core.config import reset_settings_cache

        reset_settings_cache()
        for i in range(workers):
            stack.add(f"worker{i}", ["ats_app.cli", "worker"])
        stack.add("notify-worker", ["ats_app.cli", "worker", "--queues", "notifications"])
        for name in ("monitor", "feed", "order-updates"):
            stack.add(name, ["ats_app.cli", name])
        supervisor.start()
        yield stack, server, sim_url
    finally:
        stack.stop()
        server.stop()
        sim.terminate()
        sim.wait(10)
        from ats_app.engine.store.db import dispose_engines

        dispose_engines()


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise TimeoutError(f"{url} not up after {timeout:.0f} s")


def settle(alert_ids: list[int], timeout: float) -> bool:
    """Every accepted alert final, every order final, no position EXITING."""
    from sqlmodel import col, func, select

    from ats_app.engine.store.models import Alert, Order, Position

    def pending(s: Any) -> int:
        alerts = s.exec(select(func.count()).select_from(Alert).where(
            col(Alert.id).in_(alert_ids)).where(col(Alert.status).not_in(FINAL_ALERT))).one()
        orders = s.exec(select(func.count()).select_from(Order).where(
            col(Order.status).not_in(FINAL_ORDER))).one()
        exiting = s.exec(select(func.count()).select_from(Position).where(
            Position.status == "EXITING")).one()
        return int(alerts) + int(orders) + int(exiting)

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = db_read(pending)
        if left == 0:
            return True
        time.sleep(1.0)
    log(f"not settled after {timeout:.0f} s: {db_read(pending)} alerts/orders/exits pending")
    return False


def run(args: argparse.Namespace, database_url: str, tmp: Path) -> dict[str, Any]:
    seed = args.seed
    admin = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    db_name = database_url.rsplit("/", 1)[1]
    with soak_stack(tmp, database_url, args.workers, seed) as (stack, server, sim_url):
        links, clients = build_world(sim_url, random.Random(f"{seed}:world"), args.users)
        load = Load(server.backend, links, random.Random(f"{seed}:load"), tmp / "sent.jsonl")
        prices = Prices(sim_url, random.Random(f"{seed}:prices"))
        workers = [n for n in stack.services if n.startswith("worker")]
        faults = Faults(stack, sim_url, admin, db_name, sorted(clients.values()),
                        random.Random(f"{seed}:faults"), workers)
        stop = threading.Event()
        errors: list[str] = []
        started = time.time()
        log(f"seed {seed}: {len(links)} links on {len(clients)} accounts of {args.users} "
            f"users; {args.minutes} min of load and faults")
        threads = [
            threading.Thread(target=_loop, args=(stop, (0.3, 1.8), load.rng, load.step,
                                                 "load", errors), daemon=True),
            threading.Thread(target=_loop, args=(stop, (3.0, 10.0), prices.rng,
                                                 lambda: prices.event(stop), "prices",
                                                 errors), daemon=True),
            threading.Thread(target=_loop, args=(stop, (args.fault_gap / 2, args.fault_gap * 1.5),
                                                 faults.rng, faults.one, "faults", errors),
                             daemon=True),
        ]
        for t in threads:
            t.start()
        end = started + args.minutes * 60
        while time.time() < end:
            time.sleep(min(30.0, max(0.0, end - time.time())))
            log(f"{len(load.sent)} sent, {len(faults.done)} faults, "
                f"{len(prices.events)} price events")
        stop.set()
        for t in threads:
            t.join(60)
        load_s = time.time() - started
        prices.release_all()
        _sim(sim_url, "DELETE", "/sim/faults", {})
        log("load and faults stopped; settling")
        accepted = [int(r["alert_id"]) for r in load.sent
                    if r.get("status") == 202 and r.get("alert_id")]
        settled = settle(accepted, args.settle)
        before = oracle(load.sent, prices.events, sim_url, clients, accepted, links)
        # Both books flat: an exit on every link, then nothing open on either side.
        flat = [load.post("flatten", lk, json.dumps(
            {"secret": lk.secret, "action": "exit", "symbol": lk.underlying,
             "id": f"flat-{lk.id}"}).encode(), 202) for lk in links]
        flat_ids = [int(r["alert_id"]) for r in flat if r.get("alert_id")]
        settled_flat = settle(accepted + flat_ids, args.settle)
        after = books(sim_url, clients)
        result = {
            "seed": seed, "minutes": args.minutes, "load_seconds": round(load_s, 1),
            "wall_seconds": round(time.time() - args.t0, 1),
            "users": args.users, "links": len(links), "accounts": len(clients),
            "workers": args.workers, "settled": settled, "settled_after_flatten": settled_flat,
            **before,
            "flat_after_exit_all": {"our_open": after["ours"], "broker_open": after["broker"],
                                    "disagreements": after["disagree"]},
            "faults": dict(Counter(f["fault"] for f in faults.done)),
            "fault_log": faults.done,
            "price_events": dict(Counter(e["kind"] for e in prices.events)),
            "restarts": {n: s.restarts for n, s in stack.services.items()},
            "unexpected_deaths": stack.unexpected_deaths(),
            "generator_errors": errors[:20],
            "backend_errors": _log_errors(server.log_path),
        }
    return result


def _log_errors(path: Path) -> list[str]:
    if not path.exists():
        return []
    lines = path.read_text(errors="replace").splitlines()
    return [ln[:300] for ln in lines if "Traceback" in ln or " 500 " in ln][:10]


def books(sim_url: str, clients: dict[int, str]) -> dict[str, Any]:
    """Open quantity per (account, instrument): ours (OPEN/EXITING positions) and the
    broker's (its fills, buys minus sells)."""
    from sqlmodel import col, select

    from ats_app.engine.store.models import Position

    ours: Counter[tuple[str, str]] = Counter()
    for acc, tok, qty in db_read(lambda s: s.exec(
            select(Position.account_id, Position.symbol_token, Position.quantity)
            .where(col(Position.status).in_(("OPEN", "EXITING")))).all()):
        ours[(clients.get(acc, str(acc)), tok)] += qty
    broker: Counter[tuple[str, str]] = Counter()
    for o in _sim(sim_url, "GET", "/sim/orders")["orders"]:
        sign = 1 if o["transactiontype"] == "BUY" else -1
        broker[(o["clientcode"], o["symboltoken"])] += sign * int(o["filled"])
    keys = {k for k in ours if ours[k]} | {k for k in broker if broker[k]}
    disagree = [{"client": k[0], "token": k[1], "ours": ours[k], "broker": broker[k]}
                for k in sorted(keys) if ours[k] != broker[k]]
    return {"ours": sum(1 for k in ours if ours[k]), "broker": sum(1 for k in broker
                                                                   if broker[k]),
            "disagree": disagree}


def _sent_summary(sent: list[dict[str, Any]]) -> dict[str, Any]:
    """What was sent, and how it was answered."""
    def expected(r: dict[str, Any]) -> bool:
        e = r["expect"]
        return r.get("status") in (e if isinstance(e, list) else [e])

    answers = Counter(str(r.get("status")) for r in sent)
    refused = Counter(f"{r['status']} {r.get('field') or ''} {r.get('error') or ''}".strip()[:90]
                      for r in sent if r.get("status") not in (200, 202, None))
    wrong = [{k: r.get(k) for k in ("kind", "case", "expect", "status", "error")}
             for r in sent if not expected(r)]
    five_xx = sum(1 for r in sent if (r.get("status") or 0) >= 500)
    no_answer = sum(1 for r in sent if r.get("status") is None)
    bad_dups = [r for r in sent if r["kind"] == "duplicate" and r.get("status") == 200
                and r.get("alert_id") != r.get("first_alert_id")]
    acks = [r["ms"] for r in sent if r.get("status") in (200, 202)]

    return {"sent": len(sent), "answers": dict(answers),
            "refused_by_reason": dict(refused.most_common()),
            "not_as_expected": wrong[:20], "not_as_expected_count": len(wrong),
            "5xx": five_xx, "no_answer": no_answer, "duplicates_wrong_id": len(bad_dups),
            "ack_p50_ms": round(percentile(acks, 50), 1),
            "ack_p99_ms": round(percentile(acks, 99), 1)}


def _exit_summary(events: list[dict[str, Any]], orders: list[Any]) -> dict[str, Any]:
    """Exits made due by the price driver: each due position's first exit order after the
    pin (its tick)."""
    first_exit: dict[int, float] = {}
    for o in orders:
        if o.purpose == "EXIT" and o.position_id is not None:
            t = o.created_at.timestamp()
            first_exit[o.position_id] = min(first_exit.get(o.position_id, t), t)
    due = done = missed = late = 0
    lat: list[float] = []
    missed_ids = []
    for e in events:
        for pid in e["due"]:
            due += 1
            at = first_exit.get(pid)
            if at is None:
                missed += 1
                missed_ids.append(pid)
                continue
            done += 1
            delay = max(0.0, at - e["t"])
            lat.append(delay * 1000)
            late += delay > LATE_EXIT_S
    return {"due": due, "done": done, "late": late, "missed": missed,
            "missed_positions": missed_ids[:20],
            "tick_to_exit_order_p50_ms": round(percentile(lat, 50), 1),
            "tick_to_exit_order_p99_ms": round(percentile(lat, 99), 1)}


def oracle(sent: list[dict[str, Any]], events: list[dict[str, Any]], sim_url: str,
           clients: dict[int, str], accepted: list[int], links: list[Link]) -> dict[str, Any]:
    from sqlmodel import select

    from ats_app.engine.store.models import Alert, AlertTarget, Order, Position

    summary = _sent_summary(sent)

    # 2. What we recorded.
    def ours(s: Any) -> dict[str, Any]:
        alerts = {a.id: a for a in s.exec(select(Alert)).all()}
        targets = list(s.exec(select(AlertTarget)).all())
        orders = list(s.exec(select(Order)).all())
        positions = list(s.exec(select(Position)).all())
        for row in (*alerts.values(), *targets, *orders, *positions):
            s.expunge(row)
        return {"alerts": alerts, "targets": targets, "orders": orders,
                "positions": positions}

    rec = db_read(ours)
    alerts, targets, orders = rec["alerts"], rec["targets"], rec["orders"]
    link_accounts = {lk.id: lk.accounts for lk in links}
    lost = [a for a in accepted if a not in alerts or alerts[a].status not in FINAL_ALERT]
    by_alert: dict[int, dict[int | None, Any]] = defaultdict(dict)
    for t in targets:
        by_alert[t.alert_id][t.account_id] = t
    outcomes: Counter[str] = Counter()
    missing_targets = []
    for a in accepted:
        alert = alerts.get(a)
        if alert is None:
            continue
        for acc in link_accounts[alert.link_id]:
            t = by_alert[a].get(acc)
            if t is not None:
                outcomes[t.outcome] += 1
            elif alert.status in ("REJECTED", "FAILED", "IGNORED"):
                outcomes[f"alert {alert.status}"] += 1
            else:
                missing_targets.append((a, acc, alert.status))
    reasons = Counter(f"{a.status}: {(a.reason or '')[:70]}" for a in alerts.values()
                      if a.id in set(accepted) and a.status != "DONE")
    # Traded twice for one alert and account (a FAILED attempt sent again is not a double).
    entries_per_pair = Counter((o.alert_id, o.account_id) for o in orders
                               if o.purpose == "ENTRY" and o.alert_id is not None
                               and o.filled_quantity > 0)
    exits_per_position = Counter(o.position_id for o in orders
                                 if o.purpose == "EXIT" and o.status == "FILLED")
    hostile_ids = {int(r["alert_id"]) for r in sent
                   if r["kind"] in ("hostile", "refusal") and r.get("alert_id")}
    hostile_traded = sorted({o.alert_id for o in orders if o.alert_id in hostile_ids})

    # 3. The simulator's book against our orders.
    book = _sim(sim_url, "GET", "/sim/orders")["orders"]
    tags = Counter(o["ordertag"] for o in book)
    by_tag = {o["ordertag"]: o for o in book}
    ours_by_tag = {o.client_order_id: o for o in orders}
    doubled = sorted(t for t, n in tags.items() if n > 1)
    orphans = sorted(t for t in tags if t not in ours_by_tag)
    missing = sorted(o.client_order_id for o in orders if o.status == "FILLED"
                     and o.client_order_id not in tags)
    fill_mismatch = sorted(t for t, o in ours_by_tag.items() if t in by_tag
                           and int(by_tag[t]["filled"]) != o.filled_quantity)
    positions_book = books(sim_url, clients)

    pos = {p.id: p for p in rec["positions"]}
    exits = _exit_summary(events, orders)
    exit_reasons = Counter(p.exit_reason or "?" for p in pos.values() if p.status == "CLOSED")

    return {
        "alerts": {**summary, "accepted": len(accepted), "lost": len(lost), "lost_ids": lost[:20],
                   "not_done_by_reason": dict(reasons.most_common(15))},
        "orders": {"expected": sum(outcomes.values()) + len(missing_targets),
                   "by_outcome": dict(outcomes), "missing_targets": missing_targets[:20],
                   "placed": sum(1 for o in orders if o.broker_order_id),
                   "by_status": dict(Counter(o.status for o in orders)),
                   "in_broker_book": len(book), "doubled_at_broker": doubled[:20],
                   "missing_at_broker": missing[:20], "orphans_at_broker": orphans[:20],
                   "fill_mismatch": fill_mismatch[:20],
                   "entries_doubled_in_db": [k for k, n in entries_per_pair.items() if n > 1][:20],
                   "positions_sold_twice": [p for p, n in exits_per_position.items() if n > 1],
                   "hostile_traded": hostile_traded},
        "exits": {**exits, "closed_by_reason": dict(exit_reasons)},
        "positions": {"opened": len(pos), "our_open": positions_book["ours"],
                      "broker_open": positions_book["broker"],
                      "disagreements": positions_book["disagree"]},
    }


def failures(r: dict[str, Any]) -> list[str]:
    a, o, e, p = r["alerts"], r["orders"], r["exits"], r["positions"]
    checks = {
        "5xx answers": a["5xx"], "alerts lost": a["lost"],
        "duplicates answered with another alert": a["duplicates_wrong_id"],
        "missing alert targets": len(o["missing_targets"]),
        "orders doubled at the broker": len(o["doubled_at_broker"]),
        "orders missing at the broker": len(o["missing_at_broker"]),
        "orders at the broker we do not know": len(o["orphans_at_broker"]),
        "fills that disagree": len(o["fill_mismatch"]),
        "entries doubled": len(o["entries_doubled_in_db"]),
        "positions sold twice": len(o["positions_sold_twice"]),
        "hostile bodies traded": len(o["hostile_traded"]),
        "exits missed": e["missed"],
        "positions disagreeing with the broker": len(p["disagreements"]),
        "positions left open after exiting all": len(r["flat_after_exit_all"]["disagreements"])
        + r["flat_after_exit_all"]["our_open"] + r["flat_after_exit_all"]["broker_open"],
        "not settled": int(not r["settled"]) + int(not r["settled_after_flatten"]),
        "answers not as expected": a["not_as_expected_count"],
        "load generator errors": len(r["generator_errors"]),
    }
    return [f"{name}: {n}" for name, n in checks.items() if n]


def summary(r: dict[str, Any]) -> str:
    """The oracle's figures in a few lines (the whole record is in result.json)."""
    a, o, e, p = r["alerts"], r["orders"], r["exits"], r["positions"]
    refused = sum(n for k, n in a["answers"].items() if k not in ("200", "202"))
    lines = [
        f"seed {r['seed']}: {r['load_seconds']:.0f} s of load, {sum(r['faults'].values())} "
        f"faults {r['faults']}",
        f"alerts: sent {a['sent']}, accepted {a['accepted']}, duplicates answered "
        f"{a['answers'].get('200', 0)}, refused {refused}, 5xx {a['5xx']}, no answer "
        f"{a['no_answer']}, lost {a['lost']}; ack p50 {a['ack_p50_ms']} ms, p99 "
        f"{a['ack_p99_ms']} ms",
        *(f"  refused {n}x: {k}" for k, n in a["refused_by_reason"].items()),
        *(f"  accepted, not done {n}x: {k}" for k, n in a["not_done_by_reason"].items()),
        f"orders: expected {o['expected']} {o['by_outcome']}, placed {o['placed']}, in the "
        f"broker's book {o['in_broker_book']}, doubled {len(o['doubled_at_broker'])}, missing "
        f"{len(o['missing_at_broker'])}, unknown to us {len(o['orphans_at_broker'])}, fills "
        f"disagreeing {len(o['fill_mismatch'])}, hostile traded {len(o['hostile_traded'])}",
        f"exits: due {e['due']}, done {e['done']}, late (>{LATE_EXIT_S:g} s) {e['late']}, "
        f"missed {e['missed']}; tick -> exit order p50 {e['tick_to_exit_order_p50_ms']} ms, "
        f"p99 {e['tick_to_exit_order_p99_ms']} ms; closed by {e['closed_by_reason']}",
        f"positions: opened {p['opened']}, open now ours {p['our_open']} / broker's "
        f"{p['broker_open']}, disagreeing {len(p['disagreements'])}; after exiting every "
        f"link: ours {r['flat_after_exit_all']['our_open']}, broker's "
        f"{r['flat_after_exit_all']['broker_open']}",
        f"restarts {r['restarts']} (not killed by the soak: {r['unexpected_deaths']})",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=float(os.environ.get("MINUTES", 60)))
    p.add_argument("--seed", type=int, default=None, help="default: from the clock (printed)")
    p.add_argument("--users", type=int, default=3)
    p.add_argument("--workers", type=int, default=3, help="RQ worker processes")
    p.add_argument("--fault-gap", type=float, default=8.0, help="mean seconds between faults")
    p.add_argument("--settle", type=float, default=300.0,
                   help="seconds allowed to settle once the faults stop")
    p.add_argument("--save", action="store_true", help="write bench/results.json's soak")
    args = p.parse_args(argv)
    args.t0 = time.time()
    if args.seed is None:
        args.seed = int(time.time()) % 100000
    tmp = Path(tempfile.mkdtemp(prefix="ats-soak-"))
    log(f"seed {args.seed}, logs in {tmp}")
    with _database("postgres", tmp) as url:
        if url is None:
            return 1
        result = run(args, url, tmp)
    (tmp / "result.json").write_text(json.dumps(result, indent=2, default=str))
    if args.save:
        save("soak", {k: v for k, v in result.items() if k != "fault_log"})
    print(summary(result))
    failed = failures(result)
    wall = round(time.time() - args.t0, 1)
    if failed:
        log(f"FAILED (seed {args.seed}, {wall} s, logs {tmp}): " + "; ".join(failed))
        return 1
    log(f"passed (seed {args.seed}, {wall} s): nothing lost, doubled or disagreeing")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
