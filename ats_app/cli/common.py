"""What every command module shares: usage errors, secrets from stdin, one session."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from sqlmodel import Session

SECRET_FLAGS = ("password", "api_key", "pin", "totp_secret")


class CliError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def read_stdin_secrets(args: argparse.Namespace) -> None:
    """Replace each secret flag given as '-' with one line of standard input, in flag order."""
    for name in SECRET_FLAGS:
        if getattr(args, name, None) == "-":
            line = sys.stdin.readline()
            if not line:
                raise CliError(f"--{name.replace('_', '-')} - : nothing on standard input", 2)
            setattr(args, name, line.rstrip("\r\n"))


def with_session(fn: Callable[[Session, argparse.Namespace], dict[str, Any]]):
    def run(args: argparse.Namespace) -> dict[str, Any]:
        from ats_app.engine.store.db import session_scope

        with session_scope() as session:
            return fn(session, args)

    return run

