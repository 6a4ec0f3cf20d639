"""A lean open-loop HTTP/1.1 load generator for the benchmarks.

Requests go out on a fixed schedule whatever the answers do (open loop: a slow server shows as
latency, not as a lower offered rate), over kept-alive connections, with request bytes built
by hand. httpx spent ~1 ms of CPU per request, a third of a core at 200/s on a 2-core machine
that the server under test needs; this spends a few tens of microseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from bench.results import percentile

Body = Callable[[int], bytes] | None


def _request(method: str, host: str, path: str, body: bytes | None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    if body is None:
        return (head + "\r\n").encode()
    return (head + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


async def _answer(reader: asyncio.StreamReader) -> int:
    """Read one response (Content-Length framed); returns its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def open_loop(url: str, rate: int, seconds: float, body: Body) -> dict[str, float]:
    """Send `rate` requests a second for `seconds` (POST `body(i)`, or GET when body is None);
    latency of each from its scheduled send to its full answer."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    latencies: list[float] = []
    errors = 0

    async def send(payload: bytes) -> int:
        # A kept-alive connection the server closed meanwhile fails at once: retry on a new one.
        while idle:
            reader, writer = idle.pop()
            try:
                writer.write(payload)
                status = await _answer(reader)
            except (OSError, asyncio.IncompleteReadError):
                writer.close()
                continue
            idle.append((reader, writer))
            return status
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(payload)
        status = await _answer(reader)
        idle.append((reader, writer))
        return status

    async def one(scheduled: float, payload: bytes) -> None:
        nonlocal errors
        try:
            if await send(payload) >= 300:
                errors += 1
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
        # From when it was due, not when it went out: a stalled generator is not hidden.
        latencies.append((time.perf_counter() - scheduled) * 1000)

    n = int(rate * seconds)
    # Built before the clock starts, so the schedule is not slowed by request building.
    payloads = [_request("GET" if body is None else "POST", f"{host}:{port}", path,
                         None if body is None else body(i)) for i in range(n)]
    tasks = []
    start = time.perf_counter()
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due, payloads[i])))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    for _, writer in idle:
        writer.close()
    return {"rate_target": rate, "sent": n, "achieved_per_s": round(n / elapsed, 1),
            "p50_ms": round(percentile(latencies, 50), 2),
            "p99_ms": round(percentile(latencies, 99), 2), "errors": errors}
