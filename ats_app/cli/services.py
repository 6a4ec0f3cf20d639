"""The long-running services: `worker`, `monitor` (and `sim`, dispatched before parsing).

`feed` and `order-updates` are in `positions`, beside the positions they serve.
"""

from __future__ import annotations

import argparse
from typing import Any


def cmd_worker(args: argparse.Namespace) -> dict[str, Any]:
    from ats_app.engine.services.worker import run_worker

    run_worker(burst=args.burst, queue_names=args.queues.split(",") if args.queues else None)
    return {}


def cmd_monitor(args: argparse.Namespace) -> dict[str, Any]:
    from ats_app.engine.services.monitor import run_monitor
    from ats_app.engine.services.processes import freeze_startup_heap

    freeze_startup_heap()
    run_monitor()
    return {}


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    sim = sub.add_parser("sim", help="run the SmartAPI simulator (see: sim --help)", add_help=False)
    sim.add_argument("sim_args", nargs=argparse.REMAINDER)
    sim.set_defaults(json=False)  # dispatched in main() before parsing

    w = sub.add_parser("worker", parents=[common], help="run an RQ worker")
    w.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    w.add_argument(
        "--queues",
        help="comma-separated queues (default: the trading queues; "
        "run one worker with --queues notifications too)",
    )
    w.set_defaults(fn=cmd_worker)
    sub.add_parser("monitor", parents=[common], help="run the price monitor").set_defaults(
        fn=cmd_monitor
    )
