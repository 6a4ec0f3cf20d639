"""Feed throughput: ticks/s the simulator delivers to one SDK client on 1,000 tokens.

Run: ``.venv/bin/python -m bench.sim_feed [--seconds 10] [--mode 1]``. The simulator runs in
its own process (as in production) and the official SDK's SmartWebSocketV2 decodes every
packet in this one. Target: 10,000 ticks/s (1,000 tokens x 10/s) without falling behind,
i.e. the lag between a packet's exchange timestamp and its decoding stays flat.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Any

import pyotp

CLIENT, PIN, SECRET = "BENCH1", "1234", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
TARGET = 10_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("simulator exited early")
        try:
            with urllib.request.urlopen(base + "/sim/health", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("simulator did not start")


def _tokens(base: str, n: int) -> list[tuple[int, str]]:
    with urllib.request.urlopen(base + "/OpenAPI_File/files/OpenAPIScripMaster.json") as r:
        rows = json.load(r)
    types = {"NSE": 1, "NFO": 2}
    return [(types[row["exch_seg"]], row["token"]) for row in rows][:n]


def run(seconds: float, mode: int, n_tokens: int) -> dict[str, Any]:
    from SmartApi import SmartConnect  # imported late: it creates logs/ in the cwd
    from SmartApi.smartWebSocketV2 import SmartWebSocketV2

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ats_app.simulator", "--port", str(port),
         "--account", f"{CLIENT}:{PIN}:{SECRET}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_up(base, proc)
        sc = SmartConnect(api_key="bench", root=base)
        sc.generateSession(CLIENT, PIN, pyotp.TOTP(SECRET).now())
        tokens = _tokens(base, n_tokens)
        groups: dict[int, list[str]] = {}
        for exch, tok in tokens:
            groups.setdefault(exch, []).append(tok)

        ws = SmartWebSocketV2(sc.access_token, "bench", CLIENT, sc.getfeedToken(),
                              max_retry_attempt=0)
        ws.ROOT_URI = f"ws://127.0.0.1:{port}/smart-stream"
        ws.input_request_dict = {}
        count = [0]
        lags: list[float] = []
        opened = threading.Event()

        def on_data(_w: object, d: dict[str, Any]) -> None:
            count[0] += 1
            if count[0] % 50 == 0:  # sample lag cheaply
                lags.append(time.time() * 1000 - d["exchange_timestamp"])

        ws.on_open = lambda _w: opened.set()
        ws.on_data = on_data
        ws.on_error = lambda *a: None
        thread = threading.Thread(target=ws.connect, daemon=True)
        thread.start()
        if not opened.wait(10):
            raise SystemExit("feed did not open")
        ws.subscribe("bench00001", mode,
                     [{"exchangeType": e, "tokens": toks} for e, toks in groups.items()])
        time.sleep(2.0)  # warm-up: first full rounds, caches, TCP windows
        per_second: list[int] = []
        lag_windows: list[float] = []
        start_count, t0 = count[0], time.monotonic()
        for _ in range(int(seconds)):
            c0, l0 = count[0], len(lags)
            time.sleep(1.0)
            per_second.append(count[0] - c0)
            window = lags[l0:]
            lag_windows.append(statistics.median(window) if window else float("nan"))
        elapsed = time.monotonic() - t0
        total = count[0] - start_count
        ws.MAX_RETRY_ATTEMPT = 0
        ws.wsapp.keep_running = False
        # shutdown() rather than close(): see tests/simulator/sim_kit.py stop_socket_thread.
        with contextlib.suppress(OSError, AttributeError):
            ws.wsapp.sock.sock.shutdown(socket.SHUT_RDWR)
        thread.join(5)
    finally:
        proc.terminate()
        proc.wait(10)
    measured = sorted(lags)
    return {
        "tokens": len(tokens), "mode": mode, "seconds": round(elapsed, 2),
        "ticks": total, "ticks_per_s": round(total / elapsed),
        "per_second": per_second,
        "lag_ms_p50": round(statistics.median(measured), 1) if measured else None,
        "lag_ms_p99": round(measured[int(len(measured) * 0.99) - 1], 1) if measured else None,
        "lag_ms_first_s": round(lag_windows[0], 1), "lag_ms_last_s": round(lag_windows[-1], 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--mode", type=int, default=1, choices=(1, 2, 3))
    p.add_argument("--tokens", type=int, default=1000)
    args = p.parse_args(argv)
    # The SDK writes logs/<date>/app.log into the working directory: keep it out of the repo.
    workdir = tempfile.mkdtemp(prefix="sim-bench-")
    here = os.getcwd()
    os.environ["PYTHONPATH"] = here + os.pathsep + os.environ.get("PYTHONPATH", "")
    os.chdir(workdir)
    try:
        result = run(args.seconds, args.mode, args.tokens)
    finally:
        os.chdir(here)
    ok = result["ticks_per_s"] >= TARGET * 0.95 and \
        result["lag_ms_last_s"] < max(250.0, 3 * result["lag_ms_first_s"])
    print(json.dumps(result))
    print(f"{result['ticks_per_s']} ticks/s over {result['tokens']} tokens "
          f"(mode {result['mode']}), lag p50 {result['lag_ms_p50']} ms, "
          f"p99 {result['lag_ms_p99']} ms -> {'OK' if ok else 'BELOW TARGET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
