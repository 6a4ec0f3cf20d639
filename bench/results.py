"""bench/results.json: each benchmark merges its own section; the machine is recorded too."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.json"


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


def save(section: str, data: dict[str, Any]) -> None:
    current: dict[str, Any] = {}
    if RESULTS.exists():
        try:
            current = json.loads(RESULTS.read_text())
        except ValueError:
            current = {}
    current["machine"] = {"cores": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()}
    current[section] = {**data, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                             time.gmtime())}
    RESULTS.write_text(json.dumps(current, indent=2) + "\n")
