"""The configuration routes on the real stack: the change feed's offsets on the real broker,
the OpenAPI document of a served ingest, and (once retarget.config's ConfigService is
there) the campaign round trip through PostgreSQL and the feed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest

from retarget.config.records import ConfigChange, config_topic
from retarget.config.testing import publish_changes
from retarget.ingest.management.feed_offsets import feed_offsets

from .conftest import ops_url

pytestmark = pytest.mark.integration


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def change(ws: str, name: str, version: int, *, deleted: bool = False) -> ConfigChange:
    body = None if deleted else {"name": name, "wait": f"{version}h"}
    return ConfigChange(ws, "campaign", name, version, deleted, body, "test", datetime.now(UTC))


async def test_feed_offsets_place_each_objects_newest_version(ingest_settings, stack) -> None:
    ws, other = f"ws-{uuid.uuid4().hex[:8]}", f"ws-{uuid.uuid4().hex[:8]}"
    offsets = await publish_changes(
        ingest_settings.kafka_bootstrap,
        config_topic(ingest_settings.topic_prefix),
        [
            change(ws, "a", 1),
            change(other, "a", 2),
            change(ws, "a", 3),
            change(ws, "b", 4, deleted=True),
            change(ws, "a", 1),  # an older version republished later undoes nothing
        ],
    )
    placed = await feed_offsets(ingest_settings, ws)
    assert placed == {("campaign", "a"): (3, offsets[2]), ("campaign", "b"): (4, offsets[3])}


async def test_the_openapi_document_lists_the_management_routes(ingest_settings, ingest_url) -> None:
    async with httpx.AsyncClient(base_url=ops_url(ingest_settings), timeout=30) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    for path in (
        "/v1/workspaces/{workspace_id}/campaigns",
        "/v1/workspaces/{workspace_id}/campaigns/{name}",
        "/v1/workspaces/{workspace_id}/campaigns/{name}:validate",
        "/v1/workspaces/{workspace_id}/templates/{name}/preview",
        "/v1/workspaces/{workspace_id}/policy",
        "/v1/workspaces/{workspace_id}/identity",
        "/v1/workspaces/{workspace_id}/suppressions",
        "/v1/workspaces/{workspace_id}/config/live",
    ):
        assert path in paths, path
    assert set(paths["/v1/workspaces/{workspace_id}/campaigns/{name}"]) == {"get", "put", "delete"}
