"""`user create` and `user passwd`."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from sqlmodel import Session

from ats_app.cli.common import with_session
from ats_app.engine.core.config import settings
from ats_app.engine.tenants import users


@with_session
def cmd_user_create(session: Session, args: argparse.Namespace) -> dict[str, Any]:
    from ats_app.engine.tenants.bootstrap import account_from_env

    user = users.create_user(session, args.username, args.password, args.first, args.last)
    result = asdict(user)
    if user.is_admin:
        session.flush()
        result["bootstrap_account_id"] = account_from_env(session, settings())
    return result


@with_session
def cmd_user_passwd(session: Session, args: argparse.Namespace) -> dict[str, Any]:
    uid = users.resolve(session, args.user)
    users.set_password(session, uid, args.password)
    return {"id": uid, "status": "password changed"}


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    user = sub.add_parser("user", help="users").add_subparsers(dest="cmd", required=True)
    uc = user.add_parser("create", parents=[common], help="create a user (first = admin)")
    uc.add_argument("--username", required=True)
    uc.add_argument("--password", required=True, help="or - to read from stdin")
    uc.add_argument("--first", required=True)
    uc.add_argument("--last", required=True)
    uc.set_defaults(fn=cmd_user_create)
    up = user.add_parser("passwd", parents=[common], help="set a user's password")
    up.add_argument("--user", required=True)
    up.add_argument("--password", required=True, help="or - to read from stdin")
    up.set_defaults(fn=cmd_user_passwd)
