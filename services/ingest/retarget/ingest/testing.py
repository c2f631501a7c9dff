"""In-memory fakes for ingest's side effects (publisher, key lookups, unsubscribes), for tests only."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from retarget.common.secret_keys import SecretKeyGrant
from retarget.common.write_keys import hash_key
from retarget.config.records import ConfigChange, Kind
from retarget.config.validation import ConfigInvalid
from retarget.ingest.errors import Unavailable


@dataclass
class FakePublisher:
    """Records what would go to Kafka; `down = True` makes it answer like an unreachable Kafka."""

    sent: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    down: bool = False
    started: bool = False
    closed: bool = False

    async def start(self) -> None:
        self.started = True

    async def publish(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        if self.down:
            raise Unavailable("Kafka is not connected; nothing was accepted", retry_after_s=2)
        self.sent.extend((topic, key, value) for key, value in records)

    async def problem(self) -> str | None:
        return "not connected" if self.down else None

    async def close(self) -> None:
        self.closed = True


@dataclass
class FakeKeys:
    """Write keys in a dict (key -> workspace); counts lookups to prove the cache works."""

    workspaces_by_key: dict[str, str] = field(default_factory=dict)
    lookups: int = 0

    async def workspace_for(self, key_hash: bytes) -> str | None:
        self.lookups += 1
        by_hash = {hash_key(k): ws for k, ws in self.workspaces_by_key.items()}
        return by_hash.get(key_hash)

    async def problem(self) -> str | None:
        return None

    async def close(self) -> None:
        pass


@dataclass
class FakeSecretKeys:
    """Secret keys in a dict (key -> (workspace, scopes)); counts lookups."""

    grants_by_key: dict[str, tuple[str, set[str]]] = field(default_factory=dict)
    lookups: int = 0

    async def grant_for(self, key_hash: bytes) -> SecretKeyGrant | None:
        self.lookups += 1
        for key, (workspace, scopes) in self.grants_by_key.items():
            if hash_key(key) == key_hash:
                return SecretKeyGrant(workspace, frozenset(scopes))
        return None


@dataclass
class FakeUnsubscribes:
    """Unsubscribes in a set of (workspace, email hash, campaign or "*"); `down` = PostgreSQL away."""

    workspaces: set[str] = field(default_factory=set)
    recorded: set[tuple[str, bytes, str]] = field(default_factory=set)
    sources: list[str] = field(default_factory=list)
    down: bool = False

    async def workspace_exists(self, workspace_id: str) -> bool:
        self._check()
        return workspace_id in self.workspaces

    async def unsubscribe(
        self, workspace_id: str, email_hash: bytes, *, scope: str, campaign: str, source: str
    ) -> bool:
        self._check()
        row = (workspace_id, email_hash, "*" if scope == "all" else campaign)
        new = row not in self.recorded
        self.recorded.add(row)
        self.sources.append(source)
        return new

    def _check(self) -> None:
        if self.down:
            raise Unavailable("cannot record the unsubscribe now; nothing was changed", retry_after_s=2)


@dataclass
class FakeLinkDomains:
    """Link domains by workspace (absent: no such workspace); `down` = PostgreSQL away."""

    domains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    lookups: int = 0
    down: bool = False

    async def of(self, workspace_id: str) -> tuple[str, ...] | None:
        self.lookups += 1
        if self.down:
            raise Unavailable("cannot look up the workspace's link domains now", retry_after_s=2)
        return self.domains.get(workspace_id)


@dataclass
class FakeOrigins:
    """Allowed browser origins by workspace (normalised); counts lookups; `down` = PostgreSQL away."""

    origins: dict[str, tuple[str, ...]] = field(default_factory=dict)
    lookups: int = 0
    down: bool = False

    async def of(self, workspace_id: str) -> tuple[str, ...]:
        self._look()
        return self.origins.get(workspace_id, ())

    async def every(self, limit: int) -> tuple[str, ...]:
        self._look()
        return tuple(sorted({o for found in self.origins.values() for o in found})[:limit])

    def _look(self) -> None:
        self.lookups += 1
        if self.down:
            raise Unavailable("cannot look up the allowed origins now", retry_after_s=2)


@dataclass
class FakeConfigStore:
    """ConfigService in memory: every version kept, versions from one counter. `validate`
    (kind, name, body) -> normalised body or ConfigInvalid; `down` answers like an
    unreachable PostgreSQL."""

    validate: Callable[[Kind, str, Mapping[str, Any]], dict[str, Any]] = lambda kind, name, body: dict(body)
    versions: list[ConfigChange] = field(default_factory=list)
    down: bool = False

    async def apply(
        self,
        workspace_id: str,
        kind: Kind,
        name: str,
        body: dict[str, Any],
        *,
        author: str,
        dry_run: bool = False,
        create_only: bool = False,
    ) -> ConfigChange:
        self._check_up()
        if create_only and any(
            (c.workspace_id, c.kind, c.name) == (workspace_id, kind, name) for c in self.versions
        ):
            raise ConfigInvalid(f"{kind} {name}: field name: already used in this workspace; choose another")
        change = self._new(workspace_id, kind, name, self.validate(kind, name, body), author)
        if not dry_run:
            self.versions.append(change)
        return change

    async def delete(self, workspace_id: str, kind: Kind, name: str, *, author: str) -> ConfigChange:
        self._check_up()
        change = self._new(workspace_id, kind, name, None, author)
        self.versions.append(change)
        return change

    async def current(self, workspace_id: str, kind: Kind | None = None) -> list[ConfigChange]:
        self._check_up()
        newest: dict[tuple[str, str], ConfigChange] = {}
        for c in self.versions:
            if c.workspace_id == workspace_id and kind in (None, c.kind):
                newest[(c.kind, c.name)] = c
        return list(newest.values())

    async def history(self, workspace_id: str, kind: Kind, name: str) -> list[ConfigChange]:
        self._check_up()
        return [c for c in self.versions if (c.workspace_id, c.kind, c.name) == (workspace_id, kind, name)]

    def _new(self, ws: str, kind: Kind, name: str, body: dict[str, Any] | None, author: str) -> ConfigChange:
        version = len(self.versions) + 1
        return ConfigChange(ws, kind, name, version, body is None, body, author, datetime.now(UTC))

    def _check_up(self) -> None:
        if self.down:
            raise Unavailable("cannot read the configuration now; retry", retry_after_s=2)
