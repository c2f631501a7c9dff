"""Where DKIM private keys live: one PEM file per key in RETARGET_DKIM_KEYS_DIR.

    <domain>.<selector>.<rsa|ed25519>.pem      e.g. shop.example.s2026.ed25519.pem

The signing domain is the domain of the message's From header (DMARC alignment); the
selectors are the workspace's `dkim_selector` column (several, comma separated, sign several
times, e.g. an RSA and an Ed25519 selector, RFC 8463). A folder and not a table because private
keys are secrets: they come from the deployment's secret store (a Kubernetes Secret mounted as
files, say), never pass through the database or its backups, and are never logged — only
domain, selector and algorithm are. The folder is scanned again at most every
`rescan_s`, so a key added at run time is found without a restart.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import get_args

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from retarget.sender.dkim_sign import Algorithm, SigningKey, sign_message, split_message

log = logging.getLogger(__name__)

MIN_RSA_BITS = 2048


class MissingKey(LookupError):
    """A workspace names a selector whose key is not in the folder (deferred until it is)."""


def load_key(path: Path) -> SigningKey:
    stem = path.name.removesuffix(".pem")
    rest, _, algorithm = stem.rpartition(".")
    domain, _, selector = rest.rpartition(".")
    if algorithm not in get_args(Algorithm) or not domain or not selector:
        raise ValueError(f"{path.name}: name a key <domain>.<selector>.<rsa|ed25519>.pem")
    private = load_pem_private_key(path.read_bytes(), password=None)
    if algorithm == "rsa":
        if not isinstance(private, rsa.RSAPrivateKey) or private.key_size < MIN_RSA_BITS:
            raise ValueError(f"{path.name}: not an RSA key of at least {MIN_RSA_BITS} bits")
    elif not isinstance(private, ed25519.Ed25519PrivateKey):
        raise ValueError(f"{path.name}: not an Ed25519 key")
    return SigningKey(domain.lower(), selector, algorithm, private)  # type: ignore[arg-type]


class DkimKeys:
    def __init__(self, folder: Path | None, *, rescan_s: float = 30.0) -> None:
        self.folder = folder
        self.rescan_s = rescan_s
        self._keys: dict[tuple[str, str], SigningKey] = {}
        self._scanned_at = float("-inf")

    def scan(self) -> None:
        self._scanned_at = time.monotonic()
        if self.folder is None:
            return
        keys = {}
        for path in sorted(self.folder.glob("*.pem")):
            try:
                key = load_key(path)
            except (ValueError, TypeError, OSError) as exc:
                log.error(
                    "DKIM key not usable; fix or remove the file",
                    extra={"file": path.name, "error": str(exc)},
                )
                continue
            keys[(key.domain, key.selector)] = key
        if set(keys) != set(self._keys):
            log.info("DKIM keys loaded", extra={"keys": [f"{d}/{s}" for d, s in sorted(keys)]})
        self._keys = keys

    def keys_for(self, domain: str, selectors: tuple[str, ...]) -> list[SigningKey]:
        """The keys to sign a message From `domain` with; MissingKey when one is absent."""
        domain = domain.lower()
        wanted = [(domain, s) for s in selectors]
        if any(w not in self._keys for w in wanted) and time.monotonic() - self._scanned_at >= self.rescan_s:
            self.scan()
        missing = [s for d, s in wanted if (d, s) not in self._keys]
        if missing:
            raise MissingKey(f"no DKIM key for {domain} selector(s) {', '.join(missing)}")
        return [self._keys[w] for w in wanted]

    def sign(
        self, raw: bytes, selectors: tuple[str, ...], workspace_id: str = "", *, now: float | None = None
    ) -> bytes:
        """`raw` signed with the workspace's selectors for its From domain (unchanged when none).

        The folder's keys belong to domains, not workspaces: `workspace_id` is not needed here."""
        if not selectors:
            return raw
        parsed = split_message(raw)
        keys = self.keys_for(from_domain(raw, parsed[0]), selectors)
        return sign_message(raw, keys, now=now, parsed=parsed)


# the address's domain: after the last "@", before a closing ">" or the end of the field
_FROM_DOMAIN = re.compile(rb"@([A-Za-z0-9.-]+)>?[ \t]*(?:\([^)]*\)[ \t]*)?\r\n\Z")


def from_domain(raw: bytes, fields: list[tuple[bytes, bytes]] | None = None) -> str:
    """The domain of the From address (one mailbox, as the composer writes it)."""
    fields = fields if fields is not None else split_message(raw)[0]
    value = next((field for name, field in fields if name == b"from"), b"")
    match = _FROM_DOMAIN.search(value)
    if not match:
        raise MissingKey("the message has no From address to take the signing domain from")
    return match.group(1).decode().lower()
