"""Child processes (embedded Redis, RQ worker, monitor, simulator) that die with their parent."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence

log = logging.getLogger("ats.processes")

_PR_SET_PDEATHSIG = 1
STOP_GRACE_S = 8.0  # a service's clean shutdown after SIGTERM, at most


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # If the backend is killed outright (SIGKILL), the kernel still stops this child: no orphans.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def exit_within(seconds: float) -> None:
    """Call from a SIGTERM handler: whatever the clean shutdown still waits for (a dead Redis
    retried with back-off, a socket), the process is gone after `seconds`, before whoever
    stops it gives up and leaves an orphan (the dev supervisor waits 10 s, compose 10 s)."""
    timer = threading.Timer(seconds, os._exit, args=(0,))
    timer.daemon = True
    timer.start()


def freeze_startup_heap() -> None:
    """Call once a long-running process has loaded what it keeps for life (the Reflex app,
    models, the instrument index): those objects move out of the garbage collector's sight.
    A full collection otherwise walks all of them, ~130k in the backend: a 60 ms pause taken
    every few seconds, in the middle of whichever webhook ack or tick was running."""
    gc.collect()
    gc.freeze()


def child_popen(args: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        list(args),
        env=env,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )


def python_child(module_args: Sequence[str], env: dict[str, str]) -> subprocess.Popen:
    """`python -m ...` in the same interpreter and environment."""
    return child_popen([sys.executable, "-m", *module_args], env=env)


def stop(proc: subprocess.Popen, name: str, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log.warning("%s (pid %s) ignored SIGTERM; killing", name, proc.pid)
        proc.kill()
        proc.wait(timeout=5)


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env
