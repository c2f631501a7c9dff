"""Generating and listing a workspace's DKIM keys through the config store (CLI, API, demo).

`generate_keys` makes the new keys (sealed), stores each as a `dkim` version, then marks the
workspace's previous active keys `retiring` at now + grace: new keys first, so at every moment
of the change some key signs. It returns what to publish in DNS; the private keys never leave
sealed. Through the ConfigService, so every write is versioned, validated and on the feed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from retarget.config.dkim import (
    Algorithm,
    PublishedKey,
    default_selectors,
    new_key_body,
    retiring_bodies,
)
from retarget.config.validation import validate


class DkimChange(Protocol):
    """What is read of a retarget.config.records.ConfigChange."""

    @property
    def name(self) -> str: ...
    @property
    def deleted(self) -> bool: ...
    @property
    def body(self) -> dict[str, Any] | None: ...


class ConfigWriter(Protocol):
    """The parts of retarget.config.service.ConfigService used here."""

    async def apply(
        self,
        workspace_id: str,
        kind: Any,
        name: str,
        body: dict[str, Any],
        *,
        author: str,
        create_only: bool = False,
    ) -> Any: ...
    async def current(self, workspace_id: str, kind: Any = None) -> Sequence[Any]: ...


@dataclass(frozen=True)
class Generated:
    new: list[PublishedKey]
    retiring: list[PublishedKey]


async def workspace_keys(config: ConfigWriter, workspace_id: str) -> dict[str, dict[str, Any]]:
    """selector -> body of the workspace's keys (deleted ones left out)."""
    changes: Sequence[DkimChange] = await config.current(workspace_id, "dkim")
    return {c.name: c.body for c in changes if not c.deleted and c.body}


async def generate_keys(
    config: ConfigWriter,
    workspace_id: str,
    *,
    domain: str,
    algorithms: Sequence[Algorithm],
    seal_key: bytes,
    grace: timedelta,
    now: datetime,
    author: str,
    selector: str | None = None,
) -> Generated:
    existing = await workspace_keys(config, workspace_id)
    wanted = default_selectors(algorithms, now, selector)
    taken = sorted(set(wanted) & set(existing))
    if taken:  # a selector is never reused: resolvers may still cache its old public key
        raise ValueError(
            f"dkim {taken[0]}: field name: selector already used in this workspace; choose another"
        )
    new = {s: new_key_body(workspace_id, s, domain, a, seal_key) for s, a in wanted.items()}
    for name, body in new.items():  # every key valid before any is stored (a 422 stores nothing)
        validate("dkim", name, body)  # ConfigInvalid("dkim <selector>: field name: …")
    for name, body in new.items():  # under the selector's lock: a concurrent generation can't take it too
        await config.apply(workspace_id, "dkim", name, body, author=author, create_only=True)
    retiring = retiring_bodies(existing, keep=new, now=now, grace=grace)
    for name, body in retiring.items():
        await config.apply(workspace_id, "dkim", name, body, author=author)
    return Generated(
        [PublishedKey.of(s, b) for s, b in new.items()], [PublishedKey.of(s, b) for s, b in retiring.items()]
    )


async def signing_domain(config: ConfigWriter, workspace_id: str, table_from_email: str | None) -> str | None:
    """The domain of the workspace's From address (d= must align with it for DMARC): its
    `identity` in the config store, else the workspaces table's from_email; None when neither."""
    identities: Sequence[DkimChange] = await config.current(workspace_id, "identity")
    from_email = (
        next((c.body or {} for c in identities if not c.deleted), {}).get("from_email") or table_from_email
    )
    return from_email.rpartition("@")[2].lower() or None if from_email else None


async def list_keys(config: ConfigWriter, workspace_id: str) -> list[PublishedKey]:
    return [PublishedKey.of(s, b) for s, b in sorted((await workspace_keys(config, workspace_id)).items())]
