"""bench/results.json as one Markdown table: what, measured, goal (from issue #12), floor / notes.

Run: ``.venv/bin/python -m bench.table [path/to/results.json]`` (default bench/results.json).
`render` is pure: a section or key that is missing is skipped (results.json may hold only some
benchmarks), a value that is NaN or null prints as "n/a".
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.results import RESULTS

# Goals of issue #12.
ACK_RATE = 200  # the rate the ack goal applies to
ACK_P99_MS = 5.0
ACK_RATIO = 2.0
ORDER_P50_MS = 20.0
ORDER_P99_MS = 100.0
EXIT_P99_MS = 10.0
MONITOR_TICKS_PER_S = 50_000
BROWSER_P95_MS = 500.0
SIM_FEED_TICKS_PER_S = 10_000  # bench/sim_feed.py's target (1,000 tokens x 10/s)

HEADER = "| what | measured | goal | floor / notes |\n|---|---|---|---|"
DATABASES = ("postgres", "sqlite")

Row = tuple[str, str, str, str]


# --- values --------------------------------------------------------------------------------

def _get(d: Any, *keys: str) -> Any:
    """d[k1][k2]...; None when a level is missing or not a dict."""
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _has(d: Any, *keys: str) -> bool:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return False
        d = d[k]
    return True


def _num(v: Any) -> float | None:
    """A finite number, else None (NaN, null, text)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return None if math.isnan(v) or math.isinf(v) else float(v)


def fmt(v: Any) -> str:
    """A number for the table: 1,234 / 12.3 / 1.23; NaN, null or non-numbers as n/a."""
    x = _num(v)
    if x is None:
        return "n/a"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}".removesuffix(".0")
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _parts(d: Any, fields: list[tuple[str, str]], unit: str = " ms") -> str:
    """"p50 1.2 ms, p99 3.4 ms" from whichever of the keys are present."""
    return ", ".join(f"{label} {_with_unit(d[key], unit)}" for label, key in fields
                     if isinstance(d, dict) and key in d)


def _with_unit(v: Any, unit: str) -> str:
    text = fmt(v)
    return text if text == "n/a" else text + unit


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else (" (met)" if ok else " (missed)")


def _below(v: Any, limit: float) -> bool | None:
    x = _num(v)
    return None if x is None else x < limit


def _all(*checks: bool | None) -> bool | None:
    """Met when every check is met; unknown when any is unknown."""
    if any(c is None for c in checks):
        return None
    return all(checks)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _int_key(k: str) -> tuple[int, float | str]:
    try:
        return (0, float(k))
    except ValueError:
        return (1, k)


# --- rows per section ----------------------------------------------------------------------

def _webhook_rows(section: dict[str, Any]) -> Iterator[Row]:
    """One block per database ("postgres", "sqlite", any other such section)."""
    others = [k for k, v in section.items() if k not in DATABASES and isinstance(v, dict)
              and ("ack" in v or "alert_to_order" in v)]
    for db in [d for d in DATABASES if d in section] + others:
        yield from _ack_rows(db, _get(section, db, "ack"))
        yield from _order_rows(db, _get(section, db, "alert_to_order"))


def _ack_rows(db: str, ack: Any) -> Iterator[Row]:
    if not isinstance(ack, dict):
        return
    phases = (("webhook_workers_paused", ", workers paused"), ("webhook", ""))
    for rate in sorted(ack, key=_int_key):
        for phase, suffix in phases:
            yield from _ack_row(db, rate, suffix, _get(ack, rate, phase),
                                _get(ack, rate, "floor_ping"))


def _ack_row(db: str, rate: str, suffix: str, hook: Any, floor: Any) -> Iterator[Row]:
    if not isinstance(hook, dict):
        return
    measured = _parts(hook, [("p50", "p50_ms"), ("p99", "p99_ms")])
    if "ratio_p99_to_floor" in hook:
        measured += f", ratio {fmt(hook['ratio_p99_to_floor'])} to the floor"
    if not measured:
        return
    goal = ""
    if _num(_int_key(rate)[1]) == ACK_RATE:
        goal = f"p99 < {fmt(ACK_P99_MS)} ms, ratio < {fmt(ACK_RATIO)}" + _verdict(
            _all(_below(hook.get("p99_ms"), ACK_P99_MS),
                 _below(hook.get("ratio_p99_to_floor"), ACK_RATIO)))
    notes = []
    if isinstance(floor, dict) and "p99_ms" in floor:
        notes.append(f"`/ping` p99 {fmt(floor['p99_ms'])} ms on the same server")
    if "achieved_per_s" in hook:
        notes.append(f"achieved {fmt(hook['achieved_per_s'])}/s")
    if _num(hook.get("errors")):
        notes.append(f"{fmt(hook['errors'])} errors")
    yield (f"webhook ack @{rate}/s{suffix} ({db})", measured, goal, "; ".join(notes))


def _order_rows(db: str, paths: Any) -> Iterator[Row]:
    if not isinstance(paths, dict):
        return
    floor = _get(paths, "floor_direct_http")
    floor_lat = _parts(floor, [("p50", "p50_ms"), ("p99", "p99_ms")])
    floor_note = f"one direct HTTP call to the simulator: {floor_lat}" if floor_lat else ""
    figures = [("live", "to_broker", "alert → live order at the simulator"),
               ("live", "to_fill", "alert → live fill"),
               ("paper", "to_fill", "alert → paper fill")]
    bursts = _get(paths, "bursts")
    if isinstance(bursts, dict) and bursts:  # a block per burst size, smallest first
        for burst in sorted(bursts, key=_int_key):
            for path, what, label in figures:
                yield from _order_row(f"{label}, {burst} at once ({db})",
                                      _get(bursts, burst, path), what, floor_note)
        return
    for path, what, label in figures:
        yield from _order_row(f"{label} ({db})", _get(paths, path), what, floor_note)


def _order_row(label: str, d: Any, what: str, floor_note: str) -> Iterator[Row]:
    measured = _parts(d, [("p50", f"{what}_p50_ms"), ("p99", f"{what}_p99_ms")])
    if not measured:
        return
    goal = f"p50 < {fmt(ORDER_P50_MS)} ms, p99 < {fmt(ORDER_P99_MS)} ms" + _verdict(
        _all(_below(d.get(f"{what}_p50_ms"), ORDER_P50_MS),
             _below(d.get(f"{what}_p99_ms"), ORDER_P99_MS)))
    counts = _counts(d, (("alerts", "alerts"), ("orders", "orders")))
    start = _parts(d, [("p50", "to_job_start_p50_ms"), ("p99", "to_job_start_p99_ms")])
    job_start = f"the job started {start} after arrival" if start else ""
    queued = _parts(d, [("p50", "to_enqueued_p50_ms")])
    if job_start and queued:
        job_start += f" (enqueued {queued})"
    notes = "; ".join(x for x in (floor_note, job_start, counts) if x)
    yield (label, measured, goal, notes)


def _counts(d: Any, fields: tuple[tuple[str, str], ...]) -> str:
    """"alerts 1, orders 2" from whichever of the keys are present (text as it is)."""
    return ", ".join(f"{label} {d[k] if isinstance(d[k], str) else fmt(d[k])}"
                     for k, label in fields if isinstance(d, dict) and k in d)


def _cpu(d: Any) -> str:
    if not isinstance(d, dict) or not d:
        return ""
    return "CPU " + ", ".join(f"{k} {fmt(v)} %" for k, v in d.items())


def _feed_rows(section: dict[str, Any]) -> Iterator[Row]:
    phases = _get(section, "phases")
    if not isinstance(phases, dict):
        return
    cadence = _get(section, "sim_feed_interval_ms")
    for name, ph in phases.items():
        if not isinstance(ph, dict):
            continue
        if name == "tick_to_exit":
            yield from _feed_exit_rows(ph, cadence)
            continue
        measured = []
        if "published_ticks_per_s" in ph:
            measured.append(f"{fmt(ph['published_ticks_per_s'])} ticks/s published")
        lat = _parts(ph.get("price_to_bus_ms"), [("p50", "p50"), ("p95", "p95")])
        if lat:
            measured.append(f"price → bus {lat}")
        if not measured:
            continue
        notes = []
        if "offered_ticks_per_s" in ph:
            notes.append(f"{fmt(ph['offered_ticks_per_s'])} ticks/s offered")
        inside = _parts(ph.get("feed_receipt_to_bus_ms"), [("p50", "p50"), ("p95", "p95")])
        if inside:
            notes.append(f"inside the feed {inside}")
        if _cpu(ph.get("cpu_pct")):
            notes.append(_cpu(ph.get("cpu_pct")))
        if cadence is not None:
            notes.append(f"includes the simulator's {fmt(cadence)} ms cadence")
        yield (f"feed process, {name}", ", ".join(measured), "", "; ".join(notes))


def _feed_exit_rows(ph: dict[str, Any], cadence: Any) -> Iterator[Row]:
    where = ""
    if "positions" in ph and "instruments" in ph:
        where = f", {fmt(ph['positions'])} positions on {fmt(ph['instruments'])} instruments"
    samples = _counts(ph, (("n", "samples"), ("missed", "missed")))
    # The goal's segment: from the feed's own receipt stamp to the job's enqueued_at (older
    # results have only the bench's view, from the tick's arrival on the bus).
    inside = ph.get("feed_receipt_to_exit_enqueued_ms")
    seen = ph.get("bus_to_exit_enqueued_ms")
    lat, name = (inside, "tick received by the feed") if isinstance(inside, dict) \
        else (seen, "tick on the bus")
    measured = _parts(lat, [("p50", "p50"), ("p99", "p99")])
    if measured:
        goal = f"p99 < {fmt(EXIT_P99_MS)} ms" + _verdict(_below(lat.get("p99"), EXIT_P99_MS))
        bus = _parts(seen, [("p50", "p50"), ("p99", "p99")]) if lat is inside else ""
        notes = [samples, f"seen from the bench, bus → exit {bus}" if bus else "",
                 _cpu(ph.get("cpu_pct"))]
        yield (f"{name} → exit enqueued, through feed and monitor{where}", measured,
               goal, "; ".join(x for x in notes if x))
    measured = _parts(ph.get("price_to_exit_enqueued_ms"), [("p50", "p50"), ("p99", "p99")])
    if measured:
        note = f"includes the simulator's {fmt(cadence)} ms cadence" if cadence is not None \
            else ""
        yield (f"simulator price → exit enqueued{where}", measured, "", note)


def _monitor_rows(section: dict[str, Any]) -> Iterator[Row]:
    where = ""
    if "positions" in section and "instruments" in section:
        where = f"{fmt(section['positions'])} positions on {fmt(section['instruments'])} " \
                "instruments"
    if "pubsub_ticks_per_s" in section:
        rate = section["pubsub_ticks_per_s"]
        x = _num(rate)
        notes = [f"pure evaluation {fmt(section['engine_ticks_per_s'])} ticks/s"] \
            if "engine_ticks_per_s" in section else []
        yield ("monitor, ticks through Redis pub/sub", _with_unit(rate, " ticks/s"),
               f"≥ {fmt(MONITOR_TICKS_PER_S)} ticks/s"
               + _verdict(None if x is None else x >= MONITOR_TICKS_PER_S),
               "; ".join([*notes, where] if where else notes))
    lat = section.get("tick_to_exit_enqueued_ms")
    measured = _parts(lat, [("p50", "p50"), ("p99", "p99")])
    if measured:
        notes = []
        claim = _parts(section.get("claim_and_enqueue_ms"), [("p50", "p50"), ("p99", "p99")])
        if claim:
            notes.append(f"claim + enqueue {claim}")
        if "n" in lat:
            notes.append(f"{fmt(lat['n'])} exits")
        if "background_ticks_per_s" in lat:
            notes.append(f"{fmt(lat['background_ticks_per_s'])} background ticks/s")
        yield ("monitor, tick → exit job enqueued", measured,
               f"p99 < {fmt(EXIT_P99_MS)} ms" + _verdict(_below(lat.get("p99"), EXIT_P99_MS)),
               "; ".join(notes))


def _browser_rows(section: dict[str, Any]) -> Iterator[Row]:
    latency = section.get("tick_to_browser")
    for phase, d in (latency.items() if isinstance(latency, dict) else ()):
        measured = _parts(d, [("p50", "p50_ms"), ("p95", "p95_ms")])
        if not measured:
            continue
        notes = []
        samples = _counts(d, (("samples", "samples"), ("missed", "missed")))
        if samples:
            notes.append(samples)
        if "ticks_evaluated_per_s" in d:
            notes.append(f"{fmt(d['ticks_evaluated_per_s'])} ticks/s evaluated"
                         + (f" of {fmt(d['ticks_offered_per_s'])} offered"
                            if "ticks_offered_per_s" in d else ""))
        if _cpu(d.get("cpu_pct")):
            notes.append(_cpu(d.get("cpu_pct")))
        yield (f"tick → P&L text in Chromium, {phase}", measured,
               f"p95 < {fmt(BROWSER_P95_MS)} ms" + _verdict(_below(d.get("p95_ms"),
                                                                   BROWSER_P95_MS)),
               "; ".join(notes))
    memory = section.get("memory")
    for phase, roles in (memory.items() if isinstance(memory, dict) else ()):
        measured, notes = _memory(roles)
        if measured:
            yield (f"memory (RSS), {phase}", measured, "", notes)


def _memory(roles: Any) -> tuple[str, str]:
    if not isinstance(roles, dict):
        return "", ""
    main, children = [], []
    for role, procs in roles.items():
        for p in procs if isinstance(procs, list) else ():
            if not isinstance(p, dict) or "rss_mb" not in p:
                continue
            if role == "worker_child":
                children.append(f"{fmt(p['rss_mb'])} MB")
            else:
                name = "notify worker" if role == "worker" and p.get("queues") else role
                main.append(f"{name} {fmt(p['rss_mb'])} MB")
    notes = f"worker job children {', '.join(children)}" if children else ""
    return ", ".join(main), notes


def _sim_feed_rows(section: dict[str, Any]) -> Iterator[Row]:
    if "ticks_per_s" not in section:
        return
    rate = section["ticks_per_s"]
    measured = _with_unit(rate, " ticks/s")
    if "tokens" in section:
        measured += f" on {fmt(section['tokens'])} tokens"
    lag = _parts(section, [("lag p50", "lag_ms_p50"), ("p99", "lag_ms_p99")])
    if lag:
        measured += f", {lag}"
    x = _num(rate)
    notes = []
    if "mode" in section:
        notes.append(f"mode {section['mode']}")
    drift = _parts(section, [("lag first s", "lag_ms_first_s"), ("last s", "lag_ms_last_s")])
    if drift:
        notes.append(drift)
    yield ("simulator feed to one SDK client", measured,
           f"≥ {fmt(SIM_FEED_TICKS_PER_S)} ticks/s"
           + _verdict(None if x is None else x >= SIM_FEED_TICKS_PER_S), "; ".join(notes))


SECTIONS: list[tuple[str, Callable[[dict[str, Any]], Iterator[Row]]]] = [
    ("webhook", _webhook_rows), ("feed", _feed_rows), ("monitor", _monitor_rows),
    ("browser", _browser_rows), ("sim_feed", _sim_feed_rows),
]


# --- the table -----------------------------------------------------------------------------

def _preamble(results: dict[str, Any]) -> list[str]:
    lines = []
    machine = results.get("machine")
    if isinstance(machine, dict):
        bits = [f"{machine['cores']} cores" if "cores" in machine else "",
                f"Python {machine['python']}" if "python" in machine else "",
                str(machine.get("platform", ""))]
        lines.append("- machine: " + ", ".join(b for b in bits if b))
    for name, _ in SECTIONS:
        section = results.get(name)
        if not isinstance(section, dict):
            continue
        extra = ""
        if name == "webhook":
            extra = _counts(section, (("workers", "workers"),
                                      ("links_per_path", "links per path"),
                                      ("bursts", "alerts at once"),
                                      ("rounds", "rounds"),
                                      ("seconds_per_rate", "seconds per rate")))
        line = f"- {name}: measured at {section.get('measured_at', 'n/a')}"
        lines.append(line + (f" ({extra})" if extra else ""))
    return lines


def render(results: dict[str, Any]) -> str:
    """The Markdown table (with the machine and each section's time above it)."""
    if not isinstance(results, dict):
        results = {}
    rows: list[Row] = []
    for name, rows_of in SECTIONS:
        section = results.get(name)
        if isinstance(section, dict):
            rows.extend(rows_of(section))
    lines = _preamble(results)
    if lines:
        lines.append("")
    lines.append(HEADER)
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else RESULTS
    if not path.exists():
        print(f"{path} does not exist: run `make bench` (or one of bench/*_bench.py) first",
              file=sys.stderr)
        return 1
    print(render(json.loads(path.read_text())), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
