"""DKIM keys from the configuration feed (kind `dkim`), beside the keys folder (dkim_keys.py).

A workspace's `dkim` records (retarget.config.dkim) are its keys: each active key signs, and a
retiring one too until its `retire_at` (rotation: both selectors sign during the grace, then
only the new one). The private keys arrive sealed; they are opened here with the configuration
seal key, once per record version, and never logged. Rules, so a workspace that has keys is
never sent unsigned:

* no seal key, or a sealed key that does not open → MissingKey (the message is deferred and
  retried; the reason says what to set);
* keys for another domain than the From header's → MissingKey (d= must be the From domain,
  DMARC alignment);
* no records at all → nothing from the feed (the folder and `dkim_selector` still apply).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from retarget.config.dkim import sealing_context, signs_at
from retarget.config.records import ConfigChange, Kind
from retarget.config.seal import SealBroken, unseal
from retarget.sender.dkim_keys import DkimKeys, MissingKey, from_domain
from retarget.sender.dkim_sign import SigningKey, sign_message, split_message

log = logging.getLogger(__name__)


class ConfigRecords(Protocol):
    """The follower (retarget.config.follower.ConfigFollower, or its fake in unit tests)."""

    def of_workspace(self, workspace_id: str, kind: Kind) -> list[ConfigChange]: ...


class FeedKeys:
    def __init__(self, records: ConfigRecords, seal_key: bytes | None) -> None:
        self.records = records
        self.seal_key = seal_key
        self._opened: dict[tuple[str, str, int], SigningKey] = {}  # (workspace, selector, version)

    def signing_keys(
        self, workspace_id: str, domain_of: Callable[[], str], now: datetime
    ) -> list[SigningKey]:
        """The keys that sign this workspace's message now (none when it has none in the feed).

        `domain_of` gives the From domain; asked only when the workspace has keys."""
        records = [r for r in self.records.of_workspace(workspace_id, "dkim") if not r.deleted and r.body]
        if not records:
            return []
        signing = [r for r in records if _signs_at(r, now)]
        if not signing:
            raise MissingKey(f"workspace {workspace_id} has DKIM keys but none active: generate one")
        domain = domain_of()
        matching = [r for r in signing if (r.body or {}).get("domain") == domain]
        if not matching:
            domains = ", ".join(sorted({str((r.body or {}).get("domain")) for r in signing}))
            raise MissingKey(
                f"workspace {workspace_id} has DKIM keys for {domains}, not for the From domain {domain}"
            )
        return [self._open(r) for r in sorted(matching, key=lambda r: r.name)]

    def _open(self, record: ConfigChange) -> SigningKey:
        cache_key = (record.workspace_id, record.name, record.version)
        key = self._opened.get(cache_key)
        if key is not None:
            return key
        if self.seal_key is None:
            raise MissingKey(
                f"workspace {record.workspace_id}'s DKIM keys are sealed and this sender has no seal key: "
                "set RETARGET_CONFIG_SEAL_KEY_FILE to the key that sealed them"
            )
        body = record.body or {}
        try:
            pem = unseal(
                body["private_key_sealed"], self.seal_key, sealing_context(record.workspace_id, record.name)
            )
            private = load_pem_private_key(pem, password=None)
        except (SealBroken, KeyError, ValueError, TypeError, AttributeError) as exc:  # junk off the topic too
            raise MissingKey(f"DKIM key {record.workspace_id}/{record.name} does not open: {exc}") from None
        if not isinstance(private, (ed25519.Ed25519PrivateKey, rsa.RSAPrivateKey)):
            raise MissingKey(f"DKIM key {record.workspace_id}/{record.name} is neither Ed25519 nor RSA")
        expected = {"ed25519": ed25519.Ed25519PrivateKey, "rsa": rsa.RSAPrivateKey}.get(
            str(body.get("algorithm"))
        )
        if expected is None or not isinstance(private, expected):  # a record past the writers' validation
            raise MissingKey(f"DKIM key {record.workspace_id}/{record.name}: its algorithm is not its key's")
        key = SigningKey(body["domain"], record.name, body["algorithm"], private)
        self._opened = {k: v for k, v in self._opened.items() if k[:2] != cache_key[:2]}  # older versions
        self._opened[cache_key] = key
        return key


def _signs_at(record: ConfigChange, now: datetime) -> bool:
    """signs_at, for a record the writers did not validate (produced straight to the topic): a
    junk retire_at is a key that can't be used (MissingKey: deferred), not a dead letter
    (ValueError) nor a stalled partition (TypeError)."""
    try:
        return signs_at(record.body or {}, now)
    except (ValueError, TypeError, AttributeError) as exc:
        raise MissingKey(
            f"DKIM key {record.workspace_id}/{record.name} has an unreadable retire_at: {exc}"
        ) from None


class DkimSigner:
    """Signs with the folder's keys for the workspace's `dkim_selector` and with its feed keys."""

    def __init__(self, folder: DkimKeys, feed: FeedKeys | None, now: Callable[[], datetime]) -> None:
        self.folder = folder
        self.feed = feed
        self.now = now

    def sign(self, raw: bytes, selectors: tuple[str, ...], workspace_id: str) -> bytes:
        parsed = split_message(raw)
        keys = self.folder.keys_for(from_domain(raw, parsed[0]), selectors) if selectors else []
        if self.feed is not None:
            named = {k.selector for k in keys}
            found = self.feed.signing_keys(workspace_id, lambda: from_domain(raw, parsed[0]), self.now())
            keys += [k for k in found if k.selector not in named]
        return sign_message(raw, keys, parsed=parsed) if keys else raw
