"""`db upgrade` and `keygen`."""

from __future__ import annotations

import argparse
from typing import Any

from ats_app.engine.core.config import settings


def cmd_db_upgrade(args: argparse.Namespace) -> dict[str, Any]:
    from ats_app.engine.store.db import upgrade

    upgrade()
    return {"status": "ok", "database": _redacted_url(settings().database_url)}


def _redacted_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def cmd_keygen(args: argparse.Namespace) -> dict[str, Any]:
    from ats_app.engine.tenants.secrets_box import generate_key

    return {"ATS_SECRET_KEY": generate_key()}


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    db = sub.add_parser("db", help="database").add_subparsers(dest="cmd", required=True)
    db.add_parser("upgrade", parents=[common], help="apply migrations").set_defaults(
        fn=cmd_db_upgrade
    )

    sub.add_parser("keygen", parents=[common], help="print a new ATS_SECRET_KEY").set_defaults(
        fn=cmd_keygen
    )
