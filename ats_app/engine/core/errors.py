"""Errors the engine raises to its callers (UI, CLI, webhook)."""

from __future__ import annotations


class AtsError(Exception):
    """Base class: the message is safe to show to the user."""


class ValidationError(AtsError):
    """Bad input. `field` names the offending field when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(AtsError):
    """The row does not exist or belongs to another user (indistinguishable on purpose)."""


class AuthError(AtsError):
    """Wrong credentials, expired session or too many attempts."""


class Conflict(AtsError):
    """A uniqueness rule would be broken (e.g. username taken)."""
