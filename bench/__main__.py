"""`make bench`: every benchmark in turn, then the table from bench/results.json."""

from __future__ import annotations

import importlib
import json
import sys

from bench.results import RESULTS
from bench.table import render

BENCHES = ("bench.webhook_bench", "bench.fanout_bench", "bench.sim_feed", "bench.feed_bench",
           "bench.monitor_bench", "bench.browser_bench", "bench.replay_bench")


def main() -> int:
    for name in BENCHES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            print(f"(skipping {name}: not present)")
            continue
        print(f"== {name}")
        module.main([])  # type: ignore[attr-defined]
    if RESULTS.exists():
        print(f"\n== {RESULTS.relative_to(RESULTS.parent.parent)}\n")
        print(render(json.loads(RESULTS.read_text())), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
