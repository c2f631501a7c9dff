"""DKIM keys as configuration (kind `dkim`, name = selector): generation, DNS records, rotation.

A key's body in the config store and on the change feed:

    {"algorithm": "ed25519" | "rsa", "domain": "shop.example", "public_key": "<base64 of p=>",
     "private_key_sealed": "aesgcm1:…", "state": "active" | "retiring", "retire_at": ISO-8601 | None}

The private key is sealed (retarget.config.seal) before it leaves this module, bound to its
workspace and selector; the sender unseals it. Rotation: generating keys for a workspace that
has active ones marks those `retiring` with a `retire_at` (a grace period): both sign until
then (RFC 6376 allows several signatures), so mail in flight and cached DNS keep verifying,
then only the new ones sign. Pure apart from key generation's randomness.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_der_public_key,
)

from retarget.config.seal import SEALED_PREFIX, seal

Algorithm = Literal["ed25519", "rsa"]
State = Literal["active", "retiring"]
ALGORITHMS: tuple[Algorithm, ...] = get_args(Algorithm)
RSA_BITS = 2048
DEFAULT_GRACE = timedelta(days=7)
_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")  # one DNS label
_DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_TXT_CHUNK = 255  # one character-string of a TXT record (RFC 1035 3.3.14)


class DkimInvalid(ValueError):
    """A dkim body that is not usable; the message names the field."""


def sealing_context(workspace_id: str, selector: str) -> str:
    """What a sealed private key is bound to: it opens only for this workspace and selector."""
    return f"dkim/{workspace_id}/{selector}"


def public_key_value(private: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> str:
    """The p= value: the raw 32 bytes for Ed25519 (RFC 8463), the DER SubjectPublicKeyInfo for RSA."""
    public = private.public_key()
    if isinstance(public, ed25519.Ed25519PublicKey):
        return base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    return base64.b64encode(public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).decode()


def txt_value(algorithm: Algorithm, public_key: str) -> str:
    return f"v=DKIM1; k={algorithm}; p={public_key}"


def dns_record(selector: str, domain: str, algorithm: Algorithm, public_key: str) -> str:
    """The record to publish, zone-file style; values over 255 bytes split into several strings."""
    value = txt_value(algorithm, public_key)
    strings = " ".join(f'"{value[i : i + _TXT_CHUNK]}"' for i in range(0, len(value), _TXT_CHUNK))
    return f"{selector}._domainkey.{domain} TXT {strings}"


def generate_private_key(algorithm: Algorithm) -> ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey:
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)


def new_key_body(
    workspace_id: str, selector: str, domain: str, algorithm: Algorithm, seal_key: bytes
) -> dict[str, Any]:
    """A fresh key pair as an active `dkim` body, its private half sealed (never returned plain)."""
    private = generate_private_key(algorithm)
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return {
        "algorithm": algorithm,
        "domain": domain.lower(),
        "public_key": public_key_value(private),
        "private_key_sealed": seal(pem, seal_key, sealing_context(workspace_id, selector)),
        "state": "active",
        "retire_at": None,
    }


def default_selectors(
    algorithms: Iterable[Algorithm], now: datetime, selector: str | None
) -> dict[str, Algorithm]:
    """selector -> algorithm. Dated by default (a rotation never reuses a selector a resolver may cache)."""
    algorithms = list(algorithms)
    base = selector or f"rt{now:%Y%m%d%H%M%S}"
    if selector and len(algorithms) == 1:
        return {selector: algorithms[0]}
    return {f"{base}-{'ed' if a == 'ed25519' else 'rsa'}": a for a in algorithms}


def retiring_bodies(
    existing: Mapping[str, Mapping[str, Any]], keep: Iterable[str], now: datetime, grace: timedelta
) -> dict[str, dict[str, Any]]:
    """The workspace's active keys (other than `keep`) marked retiring at now + grace."""
    retire_at = (now + grace).isoformat()
    kept = set(keep)
    return {
        name: {**body, "state": "retiring", "retire_at": retire_at}
        for name, body in existing.items()
        if name not in kept and body.get("state") == "active"
    }


def signs_at(body: Mapping[str, Any], now: datetime) -> bool:
    """Whether this key signs at `now`: active, or retiring and not yet past retire_at."""
    if body.get("state") == "active":
        return True
    retire_at = body.get("retire_at")
    return (
        body.get("state") == "retiring" and retire_at is not None and now < datetime.fromisoformat(retire_at)
    )


def validate_dkim(name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The normalised body; DkimInvalid naming the field. The sealed key can't be checked without the seal key."""

    def bad(field: str, why: str) -> DkimInvalid:  # retarget.config.validation puts "dkim <name>: " first
        return DkimInvalid(f"field {field}: {why}")

    if not _SELECTOR.fullmatch(name):  # match's `$` allows a final newline
        raise bad("name", "a selector is one DNS label: lower-case letters, digits and '-', at most 63")
    algorithm = body.get("algorithm")
    if algorithm not in ALGORITHMS:
        raise bad("algorithm", f"must be one of {', '.join(ALGORITHMS)}")
    domain = str(body.get("domain") or "").lower()
    if not _DOMAIN.fullmatch(domain):
        raise bad("domain", "must be a domain name such as shop.example")
    _check_public_key(algorithm, body.get("public_key"), bad)
    sealed = body.get("private_key_sealed")
    if not isinstance(sealed, str) or not sealed.startswith(SEALED_PREFIX):
        raise bad("private_key_sealed", "must be a sealed private key (plain keys are never stored)")
    state = body.get("state")
    if state not in get_args(State):
        raise bad("state", "must be active or retiring")
    retire_at = body.get("retire_at")
    if state == "retiring":
        try:
            parsed = datetime.fromisoformat(str(retire_at))
        except ValueError:
            raise bad("retire_at", "a retiring key needs an ISO-8601 time with its offset") from None
        if parsed.tzinfo is None:
            raise bad("retire_at", "needs a UTC offset")
    elif retire_at is not None:
        raise bad("retire_at", "only a retiring key has one")
    return {
        "algorithm": algorithm,
        "domain": domain,
        "public_key": body["public_key"],
        "private_key_sealed": sealed,
        "state": state,
        "retire_at": retire_at,
    }


def _check_public_key(algorithm: str, value: Any, bad: Any) -> None:
    try:
        raw = base64.b64decode(str(value), validate=True)
    except binascii.Error:
        raise bad("public_key", "must be base64") from None
    if algorithm == "ed25519":
        if len(raw) != 32:
            raise bad("public_key", "an Ed25519 key is 32 bytes")
        return
    try:
        public = load_der_public_key(raw)
    except ValueError:
        raise bad("public_key", "not a DER SubjectPublicKeyInfo") from None
    if not isinstance(public, rsa.RSAPublicKey) or public.key_size < RSA_BITS:
        raise bad("public_key", f"an RSA key of at least {RSA_BITS} bits")


@dataclass(frozen=True)
class PublishedKey:
    """What an operator sees of a key: never the private half."""

    selector: str
    algorithm: str
    domain: str
    state: str
    retire_at: str | None
    dns: str

    @classmethod
    def of(cls, selector: str, body: Mapping[str, Any]) -> PublishedKey:
        return cls(
            selector,
            body["algorithm"],
            body["domain"],
            body["state"],
            body.get("retire_at"),
            dns_record(selector, body["domain"], body["algorithm"], body["public_key"]),
        )
