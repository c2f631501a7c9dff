"""Generating a workspace's DKIM keys through the config store: new keys, then the old ones retire."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from retarget.config.dkim import validate_dkim
from retarget.config.dkim_admin import generate_keys, list_keys
from retarget.config.seal import new_seal_key

SEAL = base64.b64decode(new_seal_key())
NOW = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Change:
    workspace_id: str
    kind: str
    name: str
    version: int
    deleted: bool
    body: dict[str, Any] | None


class MemoryConfig:
    """Keeps the newest version per key, validating dkim bodies like the real service."""

    def __init__(self) -> None:
        self.applied: list[Change] = []

    async def apply(
        self,
        workspace_id: str,
        kind: Any,
        name: str,
        body: dict[str, Any],
        *,
        author: str,
        create_only: bool = False,
    ) -> Change:
        if create_only and any(
            (c.workspace_id, c.kind, c.name) == (workspace_id, kind, name) for c in self.applied
        ):
            raise ValueError(f"{kind} {name}: field name: already used in this workspace; choose another")
        change = Change(workspace_id, kind, name, len(self.applied) + 1, False, validate_dkim(name, body))
        self.applied.append(change)
        return change

    async def current(self, workspace_id: str, kind: Any = None) -> list[Change]:
        newest = {(c.workspace_id, c.kind, c.name): c for c in self.applied}
        return [c for c in newest.values() if c.workspace_id == workspace_id and kind in (None, c.kind)]


async def generate(config: MemoryConfig, at: datetime, **options: Any):
    return await generate_keys(
        config,
        "ws1",
        domain="shop.example",
        algorithms=options.pop("algorithms", ("ed25519", "rsa")),
        seal_key=SEAL,
        grace=timedelta(days=7),
        now=at,
        author="test",
        **options,
    )


async def test_the_first_keys_are_active_and_nothing_retires() -> None:
    config = MemoryConfig()
    generated = await generate(config, NOW)
    assert [(k.selector, k.algorithm, k.state) for k in generated.new] == [
        ("rt20261129150000-ed", "ed25519", "active"),
        ("rt20261129150000-rsa", "rsa", "active"),
    ]
    assert generated.retiring == []
    assert generated.new[0].dns.startswith(
        'rt20261129150000-ed._domainkey.shop.example TXT "v=DKIM1; k=ed25519;'
    )


async def test_a_rotation_stores_the_new_keys_first_then_retires_the_old_ones() -> None:
    config = MemoryConfig()
    await generate(config, NOW)
    later = NOW + timedelta(days=30)
    generated = await generate(config, later, algorithms=("ed25519",), selector="s2")
    assert [c.name for c in config.applied[2:]] == ["s2", "rt20261129150000-ed", "rt20261129150000-rsa"]
    assert {k.selector: (k.state, k.retire_at) for k in generated.retiring} == {
        "rt20261129150000-ed": ("retiring", (later + timedelta(days=7)).isoformat()),
        "rt20261129150000-rsa": ("retiring", (later + timedelta(days=7)).isoformat()),
    }
    listed = await list_keys(config, "ws1")
    assert [(k.selector, k.state) for k in listed] == [
        ("rt20261129150000-ed", "retiring"),
        ("rt20261129150000-rsa", "retiring"),
        ("s2", "active"),
    ]
    assert all("aesgcm1" not in repr(k) for k in listed)


async def test_a_selector_is_never_reused() -> None:
    config = MemoryConfig()
    await generate(config, NOW, algorithms=("rsa",), selector="s1")
    with pytest.raises(ValueError, match="dkim s1: field name: selector already used"):
        await generate(config, NOW, algorithms=("rsa",), selector="s1")
    assert len(config.applied) == 1


async def test_the_signing_domain_is_the_identitys_from_domain_else_the_tables() -> None:
    from retarget.config.dkim_admin import signing_domain

    config = MemoryConfig()
    assert await signing_domain(config, "ws1", None) is None
    assert await signing_domain(config, "ws1", "news@Shop.Example") == "shop.example"
    identity = Change("ws1", "identity", "", 9, False, {"from_email": "hello@brand.example"})
    config.applied.append(identity)
    assert await signing_domain(config, "ws1", "news@shop.example") == "brand.example"


async def test_a_refused_selector_stores_no_key_of_the_batch() -> None:
    """?selector=<60 chars>&algorithm=both: '<60>-ed' is a DNS label, '<60>-rsa' is one character
    too long. Before the fix the Ed25519 key was stored (active, signing) and the answer was a
    422 saying nothing was stored."""
    config = MemoryConfig()
    with pytest.raises(ValueError, match="field name"):
        await generate(config, NOW, selector="s" * 60)
    assert config.applied == []


class InterleavingConfig(MemoryConfig):
    """The real store awaits PostgreSQL: a concurrent request runs between read and write."""

    async def current(self, workspace_id: str, kind: Any = None) -> list[Change]:
        import asyncio

        found = await super().current(workspace_id, kind)
        await asyncio.sleep(0)
        return found


async def test_two_concurrent_generations_in_one_second_never_overwrite_a_key() -> None:
    import asyncio

    config = InterleavingConfig()
    results = await asyncio.gather(generate(config, NOW), generate(config, NOW), return_exceptions=True)
    stored_per_selector: dict[str, int] = {}
    for change in config.applied:
        if change.body and change.body["state"] == "active":
            stored_per_selector[change.name] = stored_per_selector.get(change.name, 0) + 1
    assert all(count == 1 for count in stored_per_selector.values()), (stored_per_selector, results)
