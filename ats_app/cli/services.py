"""The long-running services: `worker`, `monitor`, `feed`, `order-updates`, `telegram` (and `sim`,
dispatched before parsing)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def _serve(run: Callable[[], None]) -> dict[str, Any]:
    """Run a service process until it stops, its start-up objects kept out of the GC's way."""
    from ats_app.engine.services.processes import freeze_startup_heap

    freeze_startup_heap()
    run()
    return {}


def _positive(text: str) -> int:
    n = int(text) if text.strip().isdigit() else 0
    if not 1 <= n <= 64:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 64, got {text!r}")
    return n


def cmd_worker(args: argparse.Namespace) -> dict[str, Any]:
    from ats_app.engine.services.worker import run_worker

    run_worker(burst=args.burst, queue_names=args.queues.split(",") if args.queues else None,
               threads=args.threads)
    return {}


def cmd_monitor(args: argparse.Namespace) -> dict[str, Any]:
    from ats_app.engine.services.monitor import run_monitor

    return _serve(run_monitor)


def cmd_feed(args: argparse.Namespace) -> dict[str, Any]:
    from ats_app.engine.services.feed import run_feed

    return _serve(run_feed)


def cmd_order_updates(args: argparse.Namespace) -> dict[str, Any]:
    from ats_app.engine.services.order_update_stream import run_order_updates

    return _serve(run_order_updates)


def cmd_telegram(args: argparse.Namespace) -> dict[str, Any]:
    from ats_app.engine.services.telegram_bot import run_telegram

    return _serve(run_telegram)


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    sim = sub.add_parser("sim", help="run the SmartAPI simulator (see: sim --help)", add_help=False)
    sim.add_argument("sim_args", nargs=argparse.REMAINDER)
    sim.set_defaults(json=False)  # dispatched in main() before parsing

    w = sub.add_parser("worker", parents=[common], help="run an RQ worker")
    w.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    w.add_argument("--threads", type=_positive, default=None,
                   help="jobs run at once, one thread each (default: ATS_WORKER_THREADS, 4)")
    w.add_argument(
        "--queues",
        help="comma-separated queues (default: the trading queues; "
        "run one worker with --queues notifications too)",
    )
    w.set_defaults(fn=cmd_worker)
    sub.add_parser("monitor", parents=[common], help="run the price monitor").set_defaults(
        fn=cmd_monitor
    )
    sub.add_parser(
        "feed",
        parents=[common],
        help="run the market-data feed (SmartWebSocketV2 -> Redis ticks)",
    ).set_defaults(fn=cmd_feed)
    sub.add_parser(
        "order-updates",
        parents=[common],
        help="run the order-update consumer (Angel's order-update socket -> order rows)",
    ).set_defaults(fn=cmd_order_updates)
    sub.add_parser(
        "telegram",
        parents=[common],
        help="run the Telegram control bot (getUpdates; needs TELEGRAM_BOT_TOKEN)",
    ).set_defaults(fn=cmd_telegram)
