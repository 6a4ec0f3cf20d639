"""Broker errors, split by what the caller may do about them."""

from __future__ import annotations


class BrokerError(Exception):
    """Base class. `broker_message` is the broker's own text (shown and audited verbatim)."""

    retryable = False

    def __init__(self, message: str, *, broker_message: str | None = None,
                 errorcode: str | None = None) -> None:
        super().__init__(message)
        self.broker_message = broker_message
        self.errorcode = errorcode


class OrderRejected(BrokerError):
    """The broker refused the order (margin, invalid symbol, bad field...). Permanent."""


class SessionExpired(BrokerError):
    """Token invalid or expired (AG8001/AG8002/AB1010): renew or log in again, then retry."""

    retryable = True


class LoginFailed(BrokerError):
    """Login refused (wrong PIN, TOTP refused twice, bad API key). Permanent until fixed."""


class RateLimited(BrokerError):
    """Over Angel's access rate (HTTP 403 plain text). Back off, then retry."""

    retryable = True


class StaticIpRefused(BrokerError):
    """Orders refused from this source address (not the account's registered static IP)."""


class EgressUnavailable(BrokerError):
    """The account's local source address is not usable on this machine (not configured on
    any interface): nothing was sent. Permanent until the server or the setting is fixed."""


class BrokerDown(BrokerError):
    """The broker could not be reached or answered 5xx before our request was processed."""

    retryable = True


class UnknownOutcome(BrokerError):
    """The request may have been processed but no answer came: reconcile, never resend."""


class TotpRefused(LoginFailed):
    """Angel refused the TOTP (AB1050): clock drift, wrong secret, or TOTP not enabled."""
