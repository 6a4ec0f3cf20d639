"""Operator CLI: `python -m ats_app.cli --help`.

With `--json` every command prints one JSON object on stdout. Errors go to stderr with exit
status 1 (the operation failed) or 2 (bad usage). A secret flag given as `-` is read from
standard input so it stays out of shell history.
"""

# One module per command group (db, users, accounts, strategies, webhooks, trading,
# services, instruments, positions, notify, risk); this module assembles them and runs one.

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

from ats_app.cli import (
    accounts,
    db,
    instruments,
    notify,
    positions,
    reports,
    risk,
    services,
    strategies,
    trading,
    users,
    webhooks,
)
from ats_app.cli.common import CliError, read_stdin_secrets
from ats_app.engine.core.config import ConfigError
from ats_app.engine.core.errors import AtsError

__all__ = ["CliError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p = argparse.ArgumentParser(
        prog="python -m ats_app.cli",
        description=__doc__,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="group", required=True)
    for group in (db, users, accounts, strategies, webhooks, trading, services, instruments,
                  positions, notify, risk, reports):
        group.add_commands(sub, common)
    return p


def _print_human(result: dict[str, Any]) -> None:
    for key, value in result.items():
        print(f"{key}: {value}")


def _audit_refusal(args: argparse.Namespace, exc: AtsError) -> None:
    """Refused input is audited too (in its own transaction; the command's rolled back)."""
    from ats_app.engine.store.audit import record_now

    with contextlib.suppress(Exception):
        record_now(
            "cli.refused",
            subject=f"{args.group} {getattr(args, 'cmd', '')}".strip(),
            error=str(exc),
            field=getattr(exc, "field", None),
        )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sim"]:
        # The simulator owns its flags (--port, --account, ...); hand them over untouched.
        from ats_app.simulator.server import main as sim_main

        return sim_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        read_stdin_secrets(args)
        result = args.fn(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except (AtsError, ConfigError) as exc:
        field = getattr(exc, "field", None)
        print(f"error: {exc}" + (f" (field: {field})" if field else ""), file=sys.stderr)
        if isinstance(exc, AtsError):
            _audit_refusal(args, exc)
        return 1
    if result:
        if args.json:
            print(json.dumps(result, default=str))
        else:
            _print_human(result)
    return 0

