"""`account add`: an Angel One account, its secrets encrypted at rest."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from sqlmodel import Session

from ats_app.cli.common import with_session
from ats_app.engine.tenants import accounts, users


@with_session
def cmd_account_add(session: Session, args: argparse.Namespace) -> dict[str, Any]:
    view = accounts.add_account(
        session,
        users.resolve(session, args.user),
        label=args.label,
        client_id=args.client_id,
        api_key=args.api_key,
        pin=args.pin,
        totp_secret=args.totp_secret,
        base_url=args.base_url,
        egress_proxy=args.egress_proxy,
        egress_ip=args.egress_ip,
        egress_source_ip=args.source_ip,
        is_simulated=args.simulated,
    )
    return asdict(view)


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    acc = sub.add_parser("account", help="broker accounts").add_subparsers(
        dest="cmd", required=True
    )
    aa = acc.add_parser("add", parents=[common], help="add an Angel One account")
    aa.add_argument("--user", required=True)
    aa.add_argument("--label", required=True)
    aa.add_argument("--client-id", required=True)
    aa.add_argument("--api-key", required=True, help="or - to read from stdin")
    aa.add_argument("--pin", required=True, help="or - to read from stdin")
    aa.add_argument("--totp-secret", required=True, help="or - to read from stdin")
    aa.add_argument("--base-url", help="a SmartAPI-compatible server, e.g. the simulator")
    aa.add_argument("--egress-proxy", help="proxy URL orders leave through")
    aa.add_argument("--egress-ip", help="the static IP registered with Angel One")
    aa.add_argument(
        "--source-ip",
        help="local address of this server that orders leave from (not with --egress-proxy)",
    )
    aa.add_argument("--simulated", action="store_true", help="mark as a simulated account")
    aa.set_defaults(fn=cmd_account_add)
