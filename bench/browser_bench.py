"""Tick → browser latency and per-process memory, on the whole app in headless Chromium.

Run: ``.venv/bin/python -m bench.browser_bench [--samples 30] [--positions 1000]``. Starts
the full `reflex run` (frontend + backend + dev services: embedded Redis, RQ workers,
monitor, feed, SmartAPI simulator) on free ports with a private data directory and
``MARKET_HOURS=always`` (paper trading at any hour).

4. Tick → browser: a user registers in Chromium, opens one paper position by webhook and
   watches the Overview. Then, `--samples` times, the simulator's price of that option is
   pinned to a new value (POST /sim/price); latency = from that POST returning to the
   Overview's P&L cell showing the new P&L (a MutationObserver in the page stamps the
   moment, on the same wall clock). The path: simulator feed (a packet per token every
   100 ms) → feed process → Redis → monitor (P&L flushed every 250 ms) → Redis → backend
   state → websocket → React. Measured with 1 open position, then with `--positions` more
   open (another user's, who is not watching) on `--light-instruments` and then on
   `--instruments` simulator options: every tick of them flows through feed and monitor
   too (10 ticks/s per instrument offered). A phase stops after 3 misses (5 s each) in a
   row: the feed falling behind the offered ticks shows as misses. Goal (issue 12):
   p95 < 500 ms.
5. Memory: RSS (and PSS, USS) of the backend, each RQ worker (and, apart, the processes
   the workers fork: RQ's scheduler, which shares their pages), the monitor and the feed,
   in each phase. The load positions are inserted as rows into
   the app's database (SQLite at <data_dir>/ats.db) and announced on `ats:positions` as the
   pipeline does; entry at the simulator's price, stop 50 % below, target 100 % above, so
   none exits during the run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.results import percentile, save

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.reflex_proc import ReflexProcess  # noqa: E402 - a shared dev harness

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
USER = "benchview"
SIM_FEED_INTERVAL_MS = 100  # the dev simulator's feed: one packet per token per interval
PNL_CELL_JS = """() => {
  const row = document.querySelector('#open-positions tbody tr');
  const cell = row ? row.querySelectorAll('td')[8] : null;
  return cell ? cell.textContent.trim() : null;
}"""
# Stamp (epoch ms) the first DOM change after which the P&L cell reads `expected`.
ARM_JS = """(expected) => {
  if (window.__pnlObs) window.__pnlObs.disconnect();
  window.__pnlAt = null;
  const read = () => {
    const row = document.querySelector('#open-positions tbody tr');
    const cell = row ? row.querySelectorAll('td')[8] : null;
    return cell ? cell.textContent.trim() : null;
  };
  const obs = new MutationObserver(() => {
    if (window.__pnlAt === null && read() === expected) {
      window.__pnlAt = performance.timeOrigin + performance.now();
      obs.disconnect();
    }
  });
  obs.observe(document.body, {subtree: true, childList: true, characterData: true});
  window.__pnlObs = obs;
  return read();
}"""


def _cli(env: dict[str, str], *args: str) -> Any:
    out = subprocess.run([sys.executable, "-m", "ats_app.cli", *args, "--json"], env=env,
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"cli {' '.join(args)} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


def _register(page: Any, frontend: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{frontend}/register")
    page.fill("#first_name", "Bench")
    page.fill("#last_name", "Viewer")
    page.fill("#username", USER)
    page.fill("#password", "correct-horse-1")
    page.fill("#confirm", "correct-horse-1")
    page.click("#register-submit")
    expect(page.locator("#welcome")).to_contain_text("Bench Viewer", timeout=60_000)
    page.click("#bot-start")
    expect(page.locator("#bot-state")).to_have_text("RUNNING", timeout=30_000)


def _open_position(app: ReflexProcess) -> dict[str, Any]:
    link = _cli(app.env, "webhook", "create", "--user", USER, "--name", "bench", "--sl", "50",
                "--paper")
    alert = {"secret": link["secret"], "action": "buy", "symbol": "NIFTY", "option": "CE",
             "strike": "ATM", "lots": 1, "id": f"bench-{time.time_ns()}"}
    r = httpx.post(f"{app.backend}/webhook/{link['token']}", content=json.dumps(alert),
                   timeout=30)
    r.raise_for_status()
    deadline = time.monotonic() + 60
    while not (positions := _cli(app.env, "positions", "list", "--user", USER)):
        if time.monotonic() > deadline:
            raise TimeoutError("no position opened")
        time.sleep(0.5)
    return positions[0]


def _measure(page: Any, sim: str, pos: dict[str, Any], n: int, start_k: int,
             deadline: float, timeout_ms: int = 5_000) -> tuple[list[float], int]:
    """n price pins; ms from each POST /sim/price returning to the P&L cell's new text
    (stops early past `deadline`, a time.monotonic(), or after 3 misses in a row)."""
    entry, qty, token = float(pos["entry_price"]), int(pos["quantity"]), pos["symboltoken"]
    latencies: list[float] = []
    missed = streak = 0
    rng = random.Random(start_k)
    with httpx.Client(timeout=10) as client:
        for i in range(n):
            if time.monotonic() > deadline or streak >= 3:
                break
            # Random phase against the feed's 100 ms and the monitor's 250 ms cadences: a
            # pin right after the last change would always wait a whole P&L period.
            time.sleep(rng.uniform(0, 0.35))
            # A different price each time (+1 % .. +12 % of entry), above the stop, on tick.
            price = round(entry * (1.01 + 0.01 * ((start_k + i) % 12)), 1)
            expected = f"{(price - entry) * qty:.2f}"
            if page.evaluate(PNL_CELL_JS) == expected:  # same as now: no change to see
                price = round(price + 0.1, 1)
                expected = f"{(price - entry) * qty:.2f}"
            page.evaluate(ARM_JS, expected)
            client.post(f"{sim}/sim/price", json={"token": token, "ltp": price}) \
                .raise_for_status()
            posted = time.time() * 1000
            try:
                page.wait_for_function("() => window.__pnlAt !== null", timeout=timeout_ms,
                                       polling=20)
            except Exception:  # playwright TimeoutError: count it, keep going
                missed += 1
                streak += 1
                continue
            streak = 0
            latencies.append(page.evaluate("() => window.__pnlAt") - posted)
    return latencies, missed


def _stats(lat: list[float], missed: int) -> dict[str, Any]:
    return {"samples": len(lat), "missed": missed,
            "p50_ms": round(percentile(lat, 50), 1), "p95_ms": round(percentile(lat, 95), 1),
            "min_ms": round(min(lat), 1) if lat else None,
            "max_ms": round(max(lat), 1) if lat else None}


def _sim_options(sim: str, count: int, skip: str) -> list[dict[str, Any]]:
    """`count` option tokens of the simulator's master, with their current price."""
    from ats_app.engine.market.scrip_master import SCRIP_MASTER_PATH

    rows = httpx.get(f"{sim}{SCRIP_MASTER_PATH}", timeout=60).json()
    options = [r for r in rows if r["exch_seg"] == "NFO" and r["instrumenttype"] == "OPTIDX"
               and r["token"] != skip]
    step = max(1, len(options) // count)
    picked = options[::step][:count]
    out = []
    with httpx.Client(timeout=10) as client:
        for r in picked:
            q = client.get(f"{sim}/sim/quote/{r['token']}").json()
            ltp = float(q.get("ltp") or 0)
            if ltp > 0:
                out.append({"token": r["token"], "symbol": r["symbol"],
                            "tick": int(float(r["tick_size"]) or 5),
                            "lotsize": int(r["lotsize"]), "ltp_paise": round(ltp * 100)})
    return out


def _publish(app: ReflexProcess, events: list[dict[str, Any]]) -> None:
    """Tell the monitor and feed, as ats_app/engine/positions.py `_publish` does."""
    import redis

    from ats_app.engine.execution.positions import POSITIONS_CHANNEL

    conn = redis.Redis.from_url(_redis_url(app))
    pipe = conn.pipeline(transaction=False)
    for e in events:
        pipe.publish(POSITIONS_CHANNEL, json.dumps(e))
    pipe.execute()
    conn.close()


def _load_positions(app: ReflexProcess, uid: int, n: int, instruments: int,
                    skip: str) -> tuple[list[int], int]:
    """Insert `n` open paper positions of user `uid` on `instruments` simulator options."""
    from ats_app.engine.store.db import session_scope
    from ats_app.engine.store.models import Position

    opts = _sim_options(f"http://127.0.0.1:{app.simulator_port}", instruments, skip)
    rows = []
    for i in range(n):
        o = opts[i % len(opts)]
        entry = o["ltp_paise"]
        rows.append(Position(user_id=uid, exchange="NFO", symbol=o["symbol"],
                             symbol_token=o["token"], quantity=o["lotsize"],
                             lot_size=o["lotsize"], tick_size_paise=o["tick"],
                             entry_price_paise=entry, initial_stop_paise=entry // 2,
                             stop_paise=entry // 2, target_paise=entry * 2,
                             peak_price_paise=entry, paper=True))
    with session_scope(_db_url(app)) as s:
        s.add_all(rows)
        s.flush()
        ids = [int(p.id or 0) for p in rows]
        events = [{"event": "opened", "position_id": p.id, "exchange": p.exchange,
                   "symboltoken": p.symbol_token, "user_id": uid} for p in rows]
    _publish(app, events)
    return ids, len({o["token"] for o in opts[:n]})


def _close_positions(app: ReflexProcess, uid: int, ids: list[int]) -> None:
    """Mark the load positions CLOSED (no trade: they were never at a broker) and say so."""
    from sqlalchemy import update
    from sqlmodel import col

    from ats_app.engine.store.db import session_scope
    from ats_app.engine.store.models import Position

    with session_scope(_db_url(app)) as s:
        s.exec(update(Position).where(col(Position.id).in_(ids))  # type: ignore[call-overload]
               .values(status="CLOSED", exit_reason="bench"))
    _publish(app, [{"event": "closed", "position_id": i, "user_id": uid} for i in ids])


def _db_url(app: ReflexProcess) -> str:
    return f"sqlite:///{app.data_dir / 'ats.db'}"


def _ticks_per_s(app: ReflexProcess, seconds: float = 3.0) -> tuple[float, dict[str, float]]:
    """Ticks the monitor evaluates per second, between two of its heartbeats; and the CPU %
    (of one core) the feed and monitor use meanwhile."""
    procs = {role: ps[0] for role, ps in _processes(app).items()
             if role in ("feed", "monitor") and ps}
    for q in procs.values():
        q.cpu_percent(None)
    b0 = _monitor_beat(app)
    time.sleep(seconds)
    b1 = _monitor_beat(app)
    cpu = {}
    for role, q in procs.items():
        with contextlib.suppress(psutil.NoSuchProcess):
            cpu[role] = q.cpu_percent(None)
    span = float(b1.get("at", 0)) - float(b0.get("at", 0))
    if span <= 0:
        return float("nan"), cpu
    return round((b1.get("ticks_seen", 0) - b0.get("ticks_seen", 0)) / span, 1), cpu


def _redis_url(app: ReflexProcess) -> str:
    return (app.data_dir / "redis" / "redis.url").read_text().strip()


def _monitor_beat(app: ReflexProcess) -> dict[str, Any]:
    import redis

    from ats_app.engine.store.redis_conn import MONITOR_HEARTBEAT_KEY

    conn = redis.Redis.from_url(_redis_url(app))
    try:
        raw = conn.get(MONITOR_HEARTBEAT_KEY)
        return json.loads(raw) if raw else {}
    finally:
        conn.close()


def _wait_tracked(app: ReflexProcess, want: int, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    beat: dict[str, Any] = {}
    while time.monotonic() < deadline:
        beat = _monitor_beat(app)
        if beat.get("positions") == want:
            break
        time.sleep(0.5)
    return beat


def _processes(app: ReflexProcess) -> dict[str, list[psutil.Process]]:
    """The app's processes by role, among the `reflex run` descendants."""
    found: dict[str, list[psutil.Process]] = {"backend": [], "worker": [], "worker_child": [],
                                              "monitor": [], "feed": []}
    procs = app.descendants()
    by_pid = {p.pid: p for p in procs}
    for p in procs:
        try:
            cmd = " ".join(p.cmdline())
            if "ats_app.cli worker" in cmd:
                parent = by_pid.get(p.ppid())
                # A worker's forks (its RQ scheduler, a work-horse per job) share its pages.
                forked = parent is not None and "ats_app.cli worker" in " ".join(
                    parent.cmdline())
                found["worker_child" if forked else "worker"].append(p)
            elif "ats_app.cli monitor" in cmd:
                found["monitor"].append(p)
            elif "ats_app.cli feed" in cmd:
                found["feed"].append(p)
            elif any(c.status == psutil.CONN_LISTEN and c.laddr.port == app.backend_port
                     for c in p.net_connections(kind="inet")):
                found["backend"].append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    # A reloader parent may hold the socket too: the backend is the one running the services.
    parents = {m.ppid() for m in found["monitor"]}
    serving = [p for p in found["backend"] if p.pid in parents]
    if serving:
        found["backend"] = serving
    return found


def _memory(app: ReflexProcess) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for role, procs in _processes(app).items():
        entries = []
        for p in procs:
            try:
                full = p.memory_full_info()
                args = p.cmdline()
                entries.append({"pid": p.pid, "rss_mb": round(full.rss / 2**20, 1),
                                "pss_mb": round(full.pss / 2**20, 1),
                                "uss_mb": round(full.uss / 2**20, 1),
                                "queues": args[args.index("--queues") + 1]
                                if "--queues" in args else None})
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        out[role] = entries
    return out


def _print(latency: dict[str, Any], memory: dict[str, Any]) -> None:
    print(f"\n{'tick -> browser P&L':36} {'n':>3} {'miss':>4} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'max ms':>7} {'ticks/s offered':>15} {'evaluated':>9} {'feed CPU %':>10}")
    for phase, s in latency.items():
        print(f"{phase:36} {s['samples']:>3} {s['missed']:>4} {s['p50_ms']:>7} "
              f"{s['p95_ms']:>7} {s['max_ms']!s:>7} {s['ticks_offered_per_s']:>15} "
              f"{s['ticks_evaluated_per_s']:>9} {s['cpu_pct'].get('feed', '-')!s:>10}")
    roles = ("backend", "worker", "worker_child", "monitor", "feed")
    print(f"\n{'RSS MB (PSS MB)':36} " + " ".join(f"{r:>17}" for r in roles))
    for phase, by_role in memory.items():
        cells = []
        for role in roles:
            entries = by_role.get(role, [])
            cells.append(" + ".join(f"{e['rss_mb']:.0f} ({e['pss_mb']:.0f})" for e in entries)
                         or "-")
        print(f"{phase:36} " + " ".join(f"{c:>17}" for c in cells))


def _sim(app: ReflexProcess) -> str:
    return f"http://127.0.0.1:{app.simulator_port}"


def _phases(app: ReflexProcess, page: Any, pos: dict[str, Any], args: argparse.Namespace,
            end: float) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Latency, memory and monitor heartbeat with 1 position, then under each load."""
    latency: dict[str, Any] = {}
    memory: dict[str, Any] = {}
    tracked: dict[str, Any] = {}
    # The 1-position phase gets a share of what is left, each load phase too.
    phases = [("1 position", 0, 0)]
    if args.positions:
        phases += [(f"{1 + args.positions} positions / {k} instruments",
                    args.positions, k)
                   for k in (args.light_instruments, args.instruments) if k]
    load_uid = None
    ids: list[int] = []
    for idx, (name, n, k) in enumerate(phases):
        if time.monotonic() > end - 20:
            _say(f"(out of time budget: {name} not measured)")
            break
        if n:
            if load_uid is None:
                load_uid = int(_cli(app.env, "user", "create", "--username",
                                    "benchload", "--password", "benchpassword",
                                    "--first", "Load", "--last", "User")["id"])
            if ids:
                _close_positions(app, load_uid, ids)
                _wait_tracked(app, 1)
            ids, k = _load_positions(app, load_uid, n, k, pos["symboltoken"])
            beat = _wait_tracked(app, 1 + n)
            _say(f"loaded {n} positions on {k} instruments; "
                 f"monitor tracks {beat.get('positions')}")
            time.sleep(3)  # feed subscribed, ticks of every instrument flowing
        offered = (k + 1) * 1000 // SIM_FEED_INTERVAL_MS
        ticks, cpu = _ticks_per_s(app)
        phase_end = time.monotonic() + (end - time.monotonic()) / (
            len(phases) - idx + 0.5)
        lat, missed = _measure(page, _sim(app), pos, args.samples, 3 + 12 * idx,
                               phase_end)
        latency[name] = {**_stats(lat, missed), "instruments": k + 1,
                         "ticks_offered_per_s": offered,
                         "ticks_evaluated_per_s": ticks, "cpu_pct": cpu}
        memory[name] = _memory(app)
        tracked[name] = _monitor_beat(app)
        _say(f"{name}: {latency[name]}")
    return latency, memory, tracked


def _say(msg: str) -> None:
    print(msg, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=30)
    p.add_argument("--positions", type=int, default=1000)
    p.add_argument("--instruments", type=int, default=500)
    p.add_argument("--light-instruments", type=int, default=50,
                   help="a first load phase on fewer instruments (0: skip it)")
    p.add_argument("--budget", type=float, default=210, help="seconds for the whole run")
    args = p.parse_args(argv)
    if not Path(CHROMIUM).exists():
        _say(f"(skipping browser bench: no Chromium at {CHROMIUM})")
        return 0
    from playwright.sync_api import sync_playwright

    # SIGTERM (e.g. `timeout`) unwinds through the finally below, which stops the app.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    end = started + args.budget
    tmp = Path(tempfile.mkdtemp(prefix="ats-bench-browser-"))
    app = ReflexProcess(tmp / "data", backend_only=False, env={"MARKET_HOURS": "always"})
    seen: dict[int, psutil.Process] = {}
    try:
        app.start(timeout=120)
        startup_s = time.monotonic() - started
        _say(f"app up in {startup_s:.0f} s (log: {app.log_path})")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_context(viewport={"width": 1200, "height": 800}).new_page()
                page.set_default_timeout(30_000)
                _register(page, app.frontend)
                pos = _open_position(app)
                page.click("#nav-overview")
                page.wait_for_function(f"() => ({PNL_CELL_JS})() !== null", timeout=30_000)
                for q in app.descendants():
                    seen[q.pid] = q
                # Warm-up: the first P&L messages start the stream and render paths.
                _measure(page, _sim(app), pos, 3, 0, end)
                latency, memory, tracked = _phases(app, page, pos, args, end)
            finally:
                for q in app.descendants():
                    seen[q.pid] = q
                browser.close()
        _print(latency, memory)
        beats = {k: {f: v.get(f) for f in ("positions", "instruments", "ticks_seen")}
                 for k, v in tracked.items()}
        _say(f"\nmonitor heartbeat: {beats}")
        save("browser", {
            "tick_to_browser": latency, "goal_p95_ms": 500, "memory": memory,
            "load": {"positions": args.positions, "user": "a second user (not watching)",
                     "how": "rows inserted + ats:positions 'opened' events; entry at the "
                            "simulator price, stop -50 %, target +100 %"},
            "monitor": beats, "startup_s": round(startup_s, 1),
            "warmup": "3 price pins before measuring",
            "path": "sim feed 100 ms -> feed -> Redis -> monitor (P&L flush 250 ms) -> Redis "
                    "-> backend state -> websocket -> React",
        })
    finally:
        app.stop()
        # Anything of the app still alive after reflex's own shutdown (by pid, ours only).
        for q in seen.values():
            try:
                if q.is_running():
                    q.kill()
            except psutil.NoSuchProcess:
                pass
        _say(f"(browser bench: {time.monotonic() - started:.0f} s in all)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
