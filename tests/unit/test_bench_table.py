"""bench/table.py: bench/results.json as one Markdown table (shapes copied from a real run)."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest

from bench import table
from bench.table import render

NAN = float("nan")

RESULTS: dict[str, Any] = {
    "machine": {"cores": 2, "python": "3.11.7",
                "platform": "Linux-6.18.44-fc-v669-x86_64-with-glibc2.36"},
    "webhook": {
        "postgres": {
            "ack": {
                "200": {
                    "webhook": {"rate_target": 200, "sent": 3000, "achieved_per_s": 67.1,
                                "p50_ms": 14990.55, "p99_ms": 39694.04, "errors": 0,
                                "ratio_p99_to_floor": 417.13},
                    "floor_ping": {"rate_target": 200, "sent": 3000, "achieved_per_s": 199.9,
                                   "p50_ms": 1.91, "p99_ms": 95.16, "errors": 0},
                },
                "50": {
                    "webhook": {"rate_target": 50, "sent": 750, "achieved_per_s": 50.0,
                                "p50_ms": 3.1, "p99_ms": 4.2, "errors": 0,
                                "ratio_p99_to_floor": 1.5},
                    "floor_ping": {"p50_ms": 1.2, "p99_ms": 2.8},
                },
            },
            "alert_to_order": {
                "floor_direct_http": {"p50_ms": 0.52, "p99_ms": 2.8},
                "paper": {"alerts": 1, "orders": 2, "to_broker_p50_ms": NAN,
                          "to_broker_p99_ms": NAN, "to_fill_p50_ms": 42.3,
                          "to_fill_p99_ms": 466.2},
                "live": {"alerts": 1, "orders": 1, "to_broker_p50_ms": 59.4,
                         "to_broker_p99_ms": NAN, "to_fill_p50_ms": 631.1,
                         "to_fill_p99_ms": 631.1},
            },
        },
        "sqlite": {
            "ack": {"200": {"webhook": {"p50_ms": 2.5, "p99_ms": 4.5,
                                        "ratio_p99_to_floor": 1.8},
                            "floor_ping": {"p50_ms": 1.0, "p99_ms": 2.5}}},
        },
        "workers": 4, "links_per_path": 1, "rounds": 1, "seconds_per_rate": 15.0,
        "measured_at": "2026-11-25T16:40:49Z",
    },
    "feed": {
        "phases": {
            "500 instruments": {
                "instruments": 500, "positions": 1000, "offered_ticks_per_s": 5000,
                "published_ticks_per_s": 4979,
                "cpu_pct": {"feed": 14.6, "simulator": 7.0, "redis": 2.0},
                "price_to_bus_ms": {"p50": 61.1, "p95": 95.7, "max": 96.6, "n": 30,
                                    "missed": 0},
                "feed_receipt_to_bus_ms": {"p50": 0.49, "p95": 0.58, "max": 2.33},
            },
            "tick_to_exit": {
                "instruments": 500, "positions": 1000, "offered_ticks_per_s": 5000,
                "cpu_pct": {"feed": 16.0, "monitor": 9.3}, "n": 40, "missed": 0,
                "price_to_exit_enqueued_ms": {"p50": 60.1, "p99": 99.2, "max": 99.2},
                "price_to_bus_ms": {"p50": 54.5, "p99": 93.7, "max": 93.7},
                "bus_to_exit_enqueued_ms": {"p50": 6.5, "p99": 9.9, "max": 9.9},
            },
        },
        "sim_feed_interval_ms": 100,
        "measured_at": "2026-11-25T16:23:21Z",
    },
    "monitor": {
        "positions": 1000, "instruments": 500, "engine_ticks_per_s": 788597,
        "pubsub_ticks_per_s": 114707, "published": 880000, "exits_enqueued": 400,
        "tick_to_exit_enqueued_ms": {"p50": 4.25, "p99": 12.5, "max": 12.32, "n": 400,
                                     "background_ticks_per_s": 10000},
        "claim_and_enqueue_ms": {"p50": 2.24, "p99": 5.99},
        "targets": {"ticks_per_s": 50000, "p99_ms": 10},
        "measured_at": "2026-11-25T16:24:56Z",
    },
    "browser": {
        "tick_to_browser": {
            "1 position": {"samples": 30, "missed": 0, "p50_ms": 198.7, "p95_ms": 291.3,
                           "ticks_offered_per_s": 10, "ticks_evaluated_per_s": 9.9,
                           "cpu_pct": {"monitor": 1.0, "feed": 0.3}},
            "1001 positions / 500 instruments": {"samples": 30, "missed": 2,
                                                 "p50_ms": 203.9, "p95_ms": 613.5},
        },
        "goal_p95_ms": 500,
        "memory": {
            "1001 positions / 500 instruments": {
                "backend": [{"pid": 1, "rss_mb": 124.6, "queues": None}],
                "worker": [{"pid": 2, "rss_mb": 95.0, "queues": None},
                           {"pid": 3, "rss_mb": 91.8, "queues": "notifications"}],
                "worker_child": [{"pid": 4, "rss_mb": 74.1, "queues": "notifications"}],
                "monitor": [{"pid": 5, "rss_mb": 86.0, "queues": None}],
                "feed": [{"pid": 6, "rss_mb": 84.8, "queues": None}],
            },
        },
        "measured_at": "2026-11-25T16:24:31Z",
    },
}


def _rows(text: str) -> dict[str, list[str]]:
    """Table rows by their first cell: [measured, goal, notes]."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith(("| what ", "|---")):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            assert len(cells) == 4, line
            assert cells[0] not in rows, f"duplicate row {cells[0]!r}"
            rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture
def results() -> dict[str, Any]:
    return copy.deepcopy(RESULTS)


def test_header_machine_and_measured_at(results: dict[str, Any]) -> None:
    text = render(results)
    lines = text.splitlines()
    assert "| what | measured | goal | floor / notes |" in lines
    header_at = lines.index("| what | measured | goal | floor / notes |")
    assert lines[header_at + 1] == "|---|---|---|---|"
    above = "\n".join(lines[:header_at])
    assert "2 cores" in above and "Python 3.11.7" in above
    for stamp in ("2026-11-25T16:40:49Z", "2026-11-25T16:23:21Z", "2026-11-25T16:24:56Z",
                  "2026-11-25T16:24:31Z"):
        assert stamp in above
    # Exactly one table: every line after the header is a row.
    assert all(line.startswith("| ") for line in lines[header_at + 2:])


def test_webhook_ack_rows_per_database_and_rate(results: dict[str, Any]) -> None:
    rows = _rows(render(results))
    measured, goal, notes = rows["webhook ack @200/s (postgres)"]
    assert measured == "p50 14,991 ms, p99 39,694 ms, ratio 417 to the floor"
    assert goal == "p99 < 5 ms, ratio < 2 (missed)"
    assert "`/ping` p99 95.2 ms" in notes and "67.1/s" in notes
    # The goal is stated at 200/s only.
    measured, goal, _ = rows["webhook ack @50/s (postgres)"]
    assert measured == "p50 3.1 ms, p99 4.2 ms, ratio 1.5 to the floor"
    assert goal == ""
    # SQLite's section has its own row, and meets both halves of the goal.
    measured, goal, _ = rows["webhook ack @200/s (sqlite)"]
    assert "p99 4.5 ms" in measured and "ratio 1.8" in measured
    assert goal.endswith("(met)")
    names = list(rows)
    assert names.index("webhook ack @50/s (postgres)") < \
        names.index("webhook ack @200/s (postgres)"), "rates in numeric order"


def test_alert_to_order_rows_and_nan(results: dict[str, Any]) -> None:
    rows = _rows(render(results))
    measured, goal, notes = rows["alert → paper fill (postgres)"]
    assert measured == "p50 42.3 ms, p99 466 ms"
    assert goal == "p50 < 20 ms, p99 < 100 ms (missed)"
    assert "p50 0.52 ms, p99 2.8 ms" in notes and "orders 2" in notes
    measured, goal, _ = rows["alert → live order at the simulator (postgres)"]
    assert measured == "p50 59.4 ms, p99 n/a"
    assert "(met)" not in goal and "(missed)" not in goal  # unknown with p99 missing
    assert rows["alert → live fill (postgres)"][0] == "p50 631 ms, p99 631 ms"
    # SQLite ran no alert -> order paths: no such rows.
    assert not [r for r in rows if r.startswith("alert") and "(sqlite)" in r]
    assert "nan" not in render(results).lower().replace("n/a", "")


def test_feed_monitor_browser_rows(results: dict[str, Any]) -> None:
    rows = _rows(render(results))
    measured, _, notes = rows["feed process, 500 instruments"]
    assert measured == "4,979 ticks/s published, price → bus p50 61.1 ms, p95 95.7 ms"
    assert "5,000 ticks/s offered" in notes and "p50 0.49 ms, p95 0.58 ms" in notes
    exit_row = next(v for k, v in rows.items() if k.startswith("tick on the bus → exit"))
    assert exit_row[:2] == ["p50 6.5 ms, p99 9.9 ms", "p99 < 10 ms (met)"]
    measured, goal, notes = rows["monitor, ticks through Redis pub/sub"]
    assert (measured, goal) == ("114,707 ticks/s", "≥ 50,000 ticks/s (met)")
    assert "788,597" in notes
    measured, goal, notes = rows["monitor, tick → exit job enqueued"]
    assert (measured, goal) == ("p50 4.25 ms, p99 12.5 ms", "p99 < 10 ms (missed)")
    assert "claim + enqueue p50 2.24 ms, p99 5.99 ms" in notes
    measured, goal, _ = rows["tick → P&L text in Chromium, 1 position"]
    assert (measured, goal) == ("p50 199 ms, p95 291 ms", "p95 < 500 ms (met)")
    _, goal, notes = rows["tick → P&L text in Chromium, 1001 positions / 500 instruments"]
    assert goal == "p95 < 500 ms (missed)" and "missed 2" in notes
    measured, _, notes = rows["memory (RSS), 1001 positions / 500 instruments"]
    assert measured == ("backend 125 MB, worker 95 MB, notify worker 91.8 MB, monitor 86 MB, "
                        "feed 84.8 MB")
    assert "74.1 MB" in notes


def test_tick_to_exit_goal_row_reads_the_systems_own_stamps(results: dict[str, Any]) -> None:
    """With the feed's receipt stamp -> enqueued_at measured, that is the goal's row; the
    bench's own view (bus -> exit) is kept as a note."""
    results["feed"]["phases"]["tick_to_exit"]["feed_receipt_to_exit_enqueued_ms"] = {
        "p50": 4.1, "p99": 10.6, "max": 12.1}
    rows = _rows(render(results))
    assert not [k for k in rows if k.startswith("tick on the bus → exit")]
    measured, goal, notes = next(
        v for k, v in rows.items() if k.startswith("tick received by the feed → exit enqueued"))
    assert (measured, goal) == ("p50 4.1 ms, p99 10.6 ms", "p99 < 10 ms (missed)")
    assert "seen from the bench, bus → exit p50 6.5 ms, p99 9.9 ms" in notes


def test_missing_sections_produce_no_rows(results: dict[str, Any]) -> None:
    del results["browser"], results["webhook"]["sqlite"]
    del results["feed"]["phases"]["tick_to_exit"]
    text = render(results)
    rows = _rows(text)
    assert not [r for r in rows if "Chromium" in r or r.startswith("memory")]
    assert not [r for r in rows if "(sqlite)" in r]
    assert not [r for r in rows if "exit enqueued, 1,000 positions" in r]
    assert "browser" not in text.split("| what |")[0]
    assert "webhook ack @200/s (postgres)" in rows  # the rest is still there
    assert "simulator feed to one SDK client" not in rows  # no sim_feed section


def test_sim_feed_row_when_present(results: dict[str, Any]) -> None:
    results["sim_feed"] = {"tokens": 1000, "mode": 1, "ticks_per_s": 10012,
                           "lag_ms_p50": 3.1, "lag_ms_p99": None,
                           "measured_at": "2026-11-25T17:00:00Z"}
    measured, goal, _ = _rows(render(results))["simulator feed to one SDK client"]
    assert measured == "10,012 ticks/s on 1,000 tokens, lag p50 3.1 ms, p99 n/a"
    assert goal == "≥ 10,000 ticks/s (met)"


def test_nan_prints_na(results: dict[str, Any]) -> None:
    results["webhook"]["postgres"]["ack"]["200"]["webhook"]["p99_ms"] = NAN
    results["monitor"]["pubsub_ticks_per_s"] = NAN
    rows = _rows(render(results))
    measured, goal, _ = rows["webhook ack @200/s (postgres)"]
    assert measured == "p50 14,991 ms, p99 n/a, ratio 417 to the floor"
    assert goal == "p99 < 5 ms, ratio < 2"  # neither met nor missed: unknown
    assert rows["monitor, ticks through Redis pub/sub"][:2] == ["n/a", "≥ 50,000 ticks/s"]


def test_real_json_with_nan_round_trips() -> None:
    text = json.dumps(RESULTS)  # writes NaN, as results.py does
    assert "NaN" in text
    assert "alert → paper fill (postgres)" in _rows(render(json.loads(text)))


def _paths(d: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    if isinstance(d, dict):
        for k, v in d.items():
            out.append((*prefix, k))
            out += _paths(v, (*prefix, k))
    return out


@pytest.mark.parametrize("junk", [None, NAN, "x", [], {}])
def test_never_crashes_on_missing_or_odd_values(junk: Any) -> None:
    for path in _paths(RESULTS):
        for mode in ("delete", "replace"):
            r = copy.deepcopy(RESULTS)
            parent = r
            for k in path[:-1]:
                parent = parent[k]
            if mode == "delete":
                del parent[path[-1]]
            else:
                parent[path[-1]] = junk
            text = render(r)
            assert "| what | measured | goal | floor / notes |" in text, path


def test_empty_and_format() -> None:
    assert render({}).strip() == "| what | measured | goal | floor / notes |\n|---|---|---|---|"
    assert [table.fmt(v) for v in (0.52, 2.8, 42.3, 466.2, 39694.04, 10, NAN, None, math.inf)] \
        == ["0.52", "2.8", "42.3", "466", "39,694", "10", "n/a", "n/a", "n/a"]


def test_ack_with_workers_paused_and_bursts_get_rows_of_their_own(
    results: dict[str, Any]
) -> None:
    pg = results["webhook"]["postgres"]
    pg["ack"]["200"]["webhook_workers_paused"] = {"p50_ms": 2.6, "p99_ms": 4.1,
                                                  "ratio_p99_to_floor": 1.9}
    pg["alert_to_order"]["bursts"] = {
        "8": {"paper": {"to_fill_p50_ms": 80.0, "to_fill_p99_ms": 130.0}},
        "1": {"paper": {"to_fill_p50_ms": 12.0, "to_fill_p99_ms": 30.0,
                        "to_job_start_p50_ms": 6.5, "to_job_start_p99_ms": 9.0,
                        "to_enqueued_p50_ms": 3.1},
              "live": {"to_broker_p50_ms": 15.0, "to_broker_p99_ms": 40.0}},
    }
    rows = _rows(render(results))
    measured, goal, _ = rows["webhook ack @200/s, workers paused (postgres)"]
    assert measured == "p50 2.6 ms, p99 4.1 ms, ratio 1.9 to the floor"
    assert goal == "p99 < 5 ms, ratio < 2 (met)"
    assert rows["webhook ack @200/s (postgres)"][1].endswith("(missed)")  # both phases shown
    assert rows["alert → paper fill, 1 at once (postgres)"][1].endswith("(met)")
    assert rows["alert → paper fill, 8 at once (postgres)"][1].endswith("(missed)")
    assert "the job started p50 6.5 ms, p99 9 ms after arrival (enqueued p50 3.1 ms)" in \
        rows["alert → paper fill, 1 at once (postgres)"][2]
    assert rows["alert → live order at the simulator, 1 at once (postgres)"][0] == \
        "p50 15 ms, p99 40 ms"
    names = list(rows)
    assert names.index("alert → paper fill, 1 at once (postgres)") < \
        names.index("alert → paper fill, 8 at once (postgres)"), "bursts in numeric order"
    assert "alert → paper fill (postgres)" not in rows  # the bursts replace the single block
