"""`strategy create`."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from sqlmodel import Session

from ats_app.cli.common import with_session
from ats_app.engine.tenants import strategies, users


@with_session
def cmd_strategy_create(session: Session, args: argparse.Namespace) -> dict[str, Any]:
    return asdict(
        strategies.create_strategy(
            session, users.resolve(session, args.user), args.name, args.description
        )
    )


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    st = sub.add_parser("strategy", help="strategies").add_subparsers(dest="cmd", required=True)
    sc = st.add_parser("create", parents=[common], help="create a strategy")
    sc.add_argument("--user", required=True)
    sc.add_argument("--name", required=True)
    sc.add_argument("--description", default="")
    sc.set_defaults(fn=cmd_strategy_create)
