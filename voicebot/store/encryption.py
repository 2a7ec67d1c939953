"""Encryption at rest of the columns that hold what callers said: transcripts, handoff
packets (transcript, slots, summary), handoff reasons and quality reviews.

Values are encrypted with Fernet (AES-128-CBC with an HMAC-SHA256) under the keys of
``VOICEBOT_ENCRYPTION_KEYS``: comma-separated, the first encrypts, every one decrypts
(``MultiFernet``), so a key is rotated by putting the new one first and running
``voicebot privacy rotate-key``. An encrypted value is stored as ``enc:v1:<token>``; anything
else is a clear value from before encryption was switched on, and reads as it is. Without a
key new values are stored clear too (a default install has none; ``voicebot serve`` warns).

Encrypted columns cannot be searched or taken apart in SQL (no ``LIKE``, no JSON functions):
code that needs a part of them reads the row and looks in Python, or uses a clear column
beside it (``handoffs.intent``, ``handoffs.queue``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Text, TypeDecorator
from sqlalchemy.engine import Dialect

logger = logging.getLogger("voicebot.store")

PREFIX = "enc:v1:"


class EncryptionError(RuntimeError):
    """A key that is not a Fernet key, or a stored value no configured key decrypts."""


class Keyring:
    """The configured keys; ``None`` as the fernet when there are none (values stay clear)."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        cleaned = [k.strip() for k in keys if k and k.strip()]
        fernets: list[Fernet] = []
        for index, key in enumerate(cleaned, start=1):
            try:
                fernets.append(Fernet(key.encode("ascii")))
            except (ValueError, UnicodeEncodeError):
                raise EncryptionError(
                    f"key {index} of VOICEBOT_ENCRYPTION_KEYS is not a Fernet key (32 url-safe "
                    "base64-encoded bytes); make one with 'voicebot privacy new-key'"
                ) from None
        self.count = len(fernets)
        self.fernet: MultiFernet | None = MultiFernet(fernets) if fernets else None

    @property
    def enabled(self) -> bool:
        return self.fernet is not None

    def encrypt(self, text: str) -> str:
        if self.fernet is None:
            return text
        return PREFIX + self.fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def decrypt(self, stored: str) -> str:
        if not is_encrypted(stored):
            return stored  # written before a key was set
        if self.fernet is None:
            raise EncryptionError(
                "the database holds encrypted values but VOICEBOT_ENCRYPTION_KEYS is not set"
            )
        try:
            return self.fernet.decrypt(stored[len(PREFIX) :].encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise EncryptionError(
                "a stored value could not be decrypted with any key in VOICEBOT_ENCRYPTION_KEYS "
                "(a wrong key, or the key it was written with was removed)"
            ) from None

    def rotate(self, stored: str) -> str:
        """The value encrypted under the first key (a clear value is encrypted now)."""
        if self.fernet is None:
            raise EncryptionError("rotation needs VOICEBOT_ENCRYPTION_KEYS")
        if not is_encrypted(stored):
            return self.encrypt(stored)
        try:
            token = self.fernet.rotate(stored[len(PREFIX) :].encode("ascii"))
        except InvalidToken:
            raise EncryptionError(
                "a stored value could not be decrypted with any key in VOICEBOT_ENCRYPTION_KEYS"
            ) from None
        return PREFIX + token.decode("ascii")


def is_encrypted(stored: object) -> bool:
    return isinstance(stored, str) and stored.startswith(PREFIX)


_keyring: Keyring | None = None


def configure(keys: Iterable[str] | str | None) -> Keyring:
    """Set the process's keys (from settings at start-up; tests call it directly)."""
    global _keyring
    if isinstance(keys, str):
        keys = keys.split(",")
    _keyring = Keyring(keys or ())
    return _keyring


def configure_from(settings: Any) -> Keyring:
    """The keys of ``settings`` (``voicebot serve``, the CLI); without one, a warning that
    transcripts and packets are stored clear."""
    secret = settings.encryption_keys
    ring = configure(secret.get_secret_value() if secret is not None else None)
    if not ring.enabled:
        logger.warning(
            "VOICEBOT_ENCRYPTION_KEYS is not set: transcripts and handoff packets are stored "
            "unencrypted (make a key with 'voicebot privacy new-key')"
        )
    return ring


def keyring() -> Keyring:
    """The configured keys; read from the settings on first use when nobody configured them."""
    if _keyring is None:
        from voicebot.config import Settings

        secret = Settings().encryption_keys
        return configure(secret.get_secret_value() if secret is not None else None)
    return _keyring


class EncryptedText(TypeDecorator[str]):
    """A text column stored encrypted when a key is configured."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else keyring().encrypt(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else keyring().decrypt(value)


class EncryptedJSON(TypeDecorator[Any]):
    """A JSON document stored as (encrypted) text. Clear rows from the JSON column it
    replaced read as before; a driver that still hands back a parsed document is accepted."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return keyring().encrypt(json.dumps(value, ensure_ascii=False, separators=(",", ":")))

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):
            return value
        return json.loads(keyring().decrypt(value))


__all__ = [
    "PREFIX",
    "EncryptedJSON",
    "EncryptedText",
    "EncryptionError",
    "Keyring",
    "configure",
    "configure_from",
    "is_encrypted",
    "keyring",
]
