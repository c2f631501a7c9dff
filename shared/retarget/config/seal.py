"""Sealing secrets kept in configuration (DKIM private keys): AES-256-GCM under a key-encryption key.

The configuration store (PostgreSQL, its backups) and the change feed (Kafka) hold only the
sealed form; only processes given the key-encryption key (the sender, and whoever generates
keys) can open it. The key comes from a file (`RETARGET_CONFIG_SEAL_KEY_FILE`, the local stack
writes one readable by its owner only) or from `RETARGET_CONFIG_SEAL_KEY`; either holds 32
random bytes in base64. A sealed value is bound to what it belongs to (the associated data,
e.g. workspace and selector), so a ciphertext copied onto another workspace does not open.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SEALED_PREFIX = "aesgcm1:"  # the format's version: another scheme can come beside it
_NONCE_BYTES = 12


class SealKeyMissing(LookupError):
    """No key-encryption key is configured; the message says how to give one."""


class SealBroken(ValueError):
    """A sealed value that does not open with this key (wrong key, other owner, or tampered)."""


class SealSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RETARGET_", extra="ignore")

    config_seal_key_file: Path | None = Field(
        None,
        description="File holding the key that seals secrets in configuration (DKIM private keys): "
        "32 random bytes, base64. The local stack writes one (mode 0600).",
    )
    config_seal_key: SecretStr | None = Field(
        None, description="The same key given directly (base64); the file wins when both are set."
    )

    @field_validator("config_seal_key_file", "config_seal_key", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


def new_seal_key() -> str:
    """A fresh key-encryption key, as stored in the key file."""
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


def load_seal_key(settings: SealSettings | None = None) -> bytes:
    """The key-encryption key; SealKeyMissing (saying what to set) when none is configured."""
    settings = settings or SealSettings()
    if settings.config_seal_key_file is not None:
        try:
            text = settings.config_seal_key_file.read_text()
        except OSError as exc:
            raise SealKeyMissing(
                f"RETARGET_CONFIG_SEAL_KEY_FILE can't be read ({type(exc).__name__}); "
                "give the file holding the configuration seal key"
            ) from None
    elif settings.config_seal_key is not None:
        text = settings.config_seal_key.get_secret_value()
    else:
        raise SealKeyMissing(
            "no configuration seal key: set RETARGET_CONFIG_SEAL_KEY_FILE (the local stack's is "
            ".devstack/secrets/config_seal_key) or RETARGET_CONFIG_SEAL_KEY to the key that sealed the DKIM keys"
        )
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except binascii.Error:
        key = b""
    if len(key) != 32:
        raise SealKeyMissing("the configuration seal key must be 32 bytes in base64 (see `new_seal_key`)")
    return key


def seal(plaintext: bytes, key: bytes, associated: str) -> str:
    nonce = os.urandom(_NONCE_BYTES)  # random 96-bit nonces: safe far beyond the keys we will ever seal
    sealed = AESGCM(key).encrypt(nonce, plaintext, associated.encode())
    return SEALED_PREFIX + base64.b64encode(nonce + sealed).decode()


def unseal(value: str, key: bytes, associated: str) -> bytes:
    if not value.startswith(SEALED_PREFIX):
        raise SealBroken("not a sealed value (expected the aesgcm1: prefix)")
    try:
        data = base64.b64decode(value.removeprefix(SEALED_PREFIX), validate=True)
        return AESGCM(key).decrypt(data[:_NONCE_BYTES], data[_NONCE_BYTES:], associated.encode())
    except (binascii.Error, InvalidTag, ValueError):
        raise SealBroken(
            "the sealed value does not open with this seal key (another key, or altered)"
        ) from None
