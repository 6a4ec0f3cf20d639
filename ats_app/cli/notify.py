"""`notify` CLI commands: a user's notification targets and event switches.

    python -m ats_app.cli notify add --user U --url - --label phone  < url-on-stdin
    python -m ats_app.cli notify test --user U
    python -m ats_app.cli notify list --user U
    python -m ats_app.cli notify remove --user U --id N
    python -m ats_app.cli notify events --user U [--enable E ...] [--disable E ...]

`add_notify_commands` plugs into `ats_app.cli.build_parser`. URLs are never printed back:
they hold bot tokens and SMTP passwords (give `--url -` to keep them out of shell history).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from typing import Any

from sqlmodel import Session

from ats_app.engine.core.errors import ValidationError
from ats_app.engine.notify import targets as notify_targets
from ats_app.engine.tenants import users

__all__ = ["add_commands"]


def _session_cmd(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> dict[str, Any]:
        from ats_app.engine.store.db import session_scope

        with session_scope() as session:
            return fn(session, users.resolve(session, args.user), args)

    return run


def _url_arg(value: str) -> str:
    if value != "-":
        return value
    line = sys.stdin.readline()
    if not line.strip():
        raise ValidationError("--url - : nothing on standard input", "url")
    return line.strip()


@_session_cmd
def cmd_notify_add(session: Session, uid: int, args: argparse.Namespace) -> dict[str, Any]:
    view = notify_targets.add_target(session, uid, _url_arg(args.url), args.label)
    return asdict(view)


@_session_cmd
def cmd_notify_test(session: Session, uid: int, args: argparse.Namespace) -> dict[str, Any]:
    results = notify_targets.test_targets(session, uid)
    failed = [r for r in results if not r["ok"]]
    if failed:
        # Exit status 1 so scripts notice; the per-target results stay in the message.
        hints = ", ".join(f"{r['id']} ({r['url_hint']})" for r in failed)
        raise ValidationError(f"test message not accepted by target(s): {hints}")
    return {"user_id": uid, "sent": len(results), "targets": results}


@_session_cmd
def cmd_notify_list(session: Session, uid: int, args: argparse.Namespace) -> dict[str, Any]:
    targets = notify_targets.list_targets(session, uid)
    return {"user_id": uid, "targets": [asdict(t) for t in targets]}


@_session_cmd
def cmd_notify_remove(session: Session, uid: int, args: argparse.Namespace) -> dict[str, Any]:
    notify_targets.remove_target(session, uid, args.id)
    return {"user_id": uid, "removed": args.id}


@_session_cmd
def cmd_notify_events(session: Session, uid: int, args: argparse.Namespace) -> dict[str, Any]:
    switches = notify_targets.set_event_switches(
        session, uid, enable=args.enable or [], disable=args.disable or []
    )
    return {"user_id": uid, "events": switches}


def add_commands(subparsers: Any, common_parent: argparse.ArgumentParser) -> None:
    """Add the `notify` group to the CLI's top-level subparsers."""
    group = subparsers.add_parser("notify", help="notification targets and event switches")
    cmds = group.add_subparsers(dest="cmd", required=True)

    a = cmds.add_parser("add", parents=[common_parent], help="add an Apprise notification URL")
    a.add_argument("--user", required=True)
    a.add_argument(
        "--url",
        required=True,
        help="e.g. tgram://BOT_TOKEN/CHAT_ID or mailtos://...; - reads stdin",
    )
    a.add_argument("--label", help="a name for it (default: the service)")
    a.set_defaults(fn=cmd_notify_add)

    t = cmds.add_parser("test", parents=[common_parent], help="send a test message now")
    t.add_argument("--user", required=True)
    t.set_defaults(fn=cmd_notify_test)

    ls = cmds.add_parser("list", parents=[common_parent], help="list targets (masked)")
    ls.add_argument("--user", required=True)
    ls.set_defaults(fn=cmd_notify_list)

    rm = cmds.add_parser("remove", parents=[common_parent], help="remove a target")
    rm.add_argument("--user", required=True)
    rm.add_argument("--id", required=True, type=int)
    rm.set_defaults(fn=cmd_notify_remove)

    known = ", ".join(e.value for e in notify_targets.Event)
    ev = cmds.add_parser(
        "events",
        parents=[common_parent],
        help="show or switch events",
        description=f"events: {known}",
    )
    ev.add_argument("--user", required=True)
    ev.add_argument("--enable", action="append", metavar="EVENT", help="repeatable")
    ev.add_argument("--disable", action="append", metavar="EVENT", help="repeatable")
    ev.set_defaults(fn=cmd_notify_events)
