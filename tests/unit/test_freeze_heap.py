"""Long-running processes hide their startup objects from the garbage collector, so a full
collection does not pause a webhook ack or a tick for tens of milliseconds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_startup_objects_leave_the_collectors_sight() -> None:
    # In a child: freezing is process-wide and would change this test process's collector.
    probe = (
        "import gc\n"
        "import ats_app.engine.execution.entry\n"
        "from ats_app.engine.services.processes import freeze_startup_heap\n"
        "before = len(gc.get_objects())\n"
        "freeze_startup_heap()\n"
        "print(gc.get_freeze_count(), before, len(gc.get_objects()))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout.split()
    frozen, tracked_before, tracked_after = (int(x) for x in out)
    assert frozen > 50_000  # the order path's modules and their objects
    assert tracked_after < tracked_before / 100  # what a full collection still walks
