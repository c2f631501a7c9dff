"""The change feed's record: one version of one configuration object, as JSON.

Key `workspace/kind/name` (compaction keeps the newest record per object); value the whole
object with its version, so a reader never needs an earlier record. A deletion is a record
with `deleted: true`, not a Kafka tombstone: a tombstone is compacted away, and a late
reader would then see the bundled default of that name come back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

import orjson

from retarget.common.topics import Topics

Kind = Literal["campaign", "template", "identity", "policy", "dkim"]
KINDS: tuple[str, ...] = get_args(Kind)
# identity and policy are one object per workspace: their name is ""
SINGLETON_KINDS: frozenset[str] = frozenset({"identity", "policy"})


@dataclass(frozen=True)
class ConfigChange:
    workspace_id: str
    kind: Kind
    name: str  # campaign/template name, DKIM selector, "" for identity/policy
    version: int  # from one PostgreSQL sequence: larger = newer, never reused
    deleted: bool
    body: dict[str, Any] | None  # None when deleted
    author: str
    changed_at: datetime

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.workspace_id, self.kind, self.name)


def config_topic(prefix: str) -> str:
    return Topics(prefix).config


def record_key(workspace_id: str, kind: str, name: str) -> bytes:
    return f"{workspace_id}/{kind}/{name}".encode()


def encode(change: ConfigChange) -> tuple[bytes, bytes]:
    """(key, value) of the feed record."""
    value = {
        "workspace_id": change.workspace_id,
        "kind": change.kind,
        "name": change.name,
        "version": change.version,
        "deleted": change.deleted,
        "body": None if change.deleted else change.body,
        "author": change.author,
        "changed_at": change.changed_at.isoformat(),
    }
    return record_key(change.workspace_id, change.kind, change.name), orjson.dumps(value)


def decode(key: bytes, value: bytes) -> ConfigChange:
    """The record's change; ValueError naming what is wrong (never echoing the content)."""
    try:
        raw = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"value is not JSON ({exc.msg})") from None
    if not isinstance(raw, Mapping):
        raise ValueError("value is not a JSON object")
    change = ConfigChange(
        workspace_id=_text(raw, "workspace_id", min_length=1),
        kind=_kind(raw.get("kind")),
        name=_text(raw, "name"),
        version=_version(raw.get("version")),
        deleted=_flag(raw.get("deleted")),
        body=_body(raw.get("body"), raw.get("deleted")),
        author=_text(raw, "author"),
        changed_at=_instant(raw.get("changed_at")),
    )
    if key != record_key(change.workspace_id, change.kind, change.name):
        raise ValueError("key does not match the value's workspace/kind/name")
    return change


def _text(raw: Mapping[str, Any], field: str, *, min_length: int = 0) -> str:
    value = raw.get(field)
    if not isinstance(value, str) or len(value) < min_length:
        raise ValueError(f"field {field}: expected a string")
    return value


def _kind(value: Any) -> Kind:
    if value not in KINDS:
        raise ValueError(f"field kind: expected one of {', '.join(KINDS)}")
    return value  # type: ignore[no-any-return]


def _version(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError("field version: expected a positive integer")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("field deleted: expected true or false")
    return value


def _body(value: Any, deleted: Any) -> dict[str, Any] | None:
    if deleted is True:
        return None
    if not isinstance(value, dict):
        raise ValueError("field body: expected an object (or deleted: true)")
    return value


def _instant(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("field changed_at: expected an ISO 8601 time")
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("field changed_at: expected an ISO 8601 time") from None
    if instant.tzinfo is None:
        raise ValueError("field changed_at: the time needs a UTC offset")
    return instant
