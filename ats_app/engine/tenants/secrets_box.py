"""Encryption at rest for broker secrets (API key, PIN, TOTP secret, webhook secrets).

Fernet (AES-128-CBC + HMAC-SHA256) with a key from ATS_SECRET_KEY. Ciphertexts carry a
prefix so a plaintext value accidentally written to a secret column is detectable.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

PREFIX = "enc1:"


class SecretError(RuntimeError):
    """A stored secret cannot be decrypted (wrong ATS_SECRET_KEY or corrupted value)."""


class SecretBox:
    def __init__(self, key: str) -> None:
        try:
            self._fernet = Fernet(key.encode() if isinstance(key, str) else key)
        except (ValueError, TypeError) as exc:
            raise SecretError(
                "ATS_SECRET_KEY is not a valid Fernet key (32 url-safe base64-encoded bytes)"
            ) from exc

    def encrypt(self, plaintext: str) -> str:
        return PREFIX + self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            raise SecretError("stored value is not an encrypted secret")
        try:
            return self._fernet.decrypt(stored[len(PREFIX) :].encode()).decode()
        except InvalidToken as exc:
            raise SecretError(
                "secret cannot be decrypted with the configured ATS_SECRET_KEY"
            ) from exc


def generate_key() -> str:
    return Fernet.generate_key().decode()


_boxes: dict[str, SecretBox] = {}


def default_box() -> SecretBox:
    """The box for the configured ATS_SECRET_KEY."""
    from ats_app.engine.core.config import settings

    key = settings().secret_key
    if key not in _boxes:
        _boxes[key] = SecretBox(key)
    return _boxes[key]
