"""The unmodified Segment and RudderStack Python SDKs, pointed at ingest, just work.

Both always POST to <host>/v1/batch with the write key as the Basic username; Rudder gzips
by default. The SDKs are synchronous (requests), so they run in a thread while the server
runs on this event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

pytestmark = pytest.mark.integration


def send_with(client: object) -> None:
    client.track(  # type: ignore[attr-defined]
        user_id="user-1",
        event="Product Added",
        properties={"product_id": "p1", "price": 12.5},
        message_id="t-1",
    )
    client.identify(user_id="user-1", traits={"plan": "trial"}, message_id="i-1")  # type: ignore[attr-defined]
    client.page(  # type: ignore[attr-defined]
        user_id="user-1",
        name="Checkout",
        properties={"url": "https://shop.example/checkout"},
        message_id="p-1",
    )
    client.flush()  # type: ignore[attr-defined]


# The SDKs' default mode: a background thread batches the calls; flush() waits for the upload.
def segment_client(url: str, key: str, on_error: Callable[..., None], retries: int = 0) -> object:
    from segment.analytics import Client

    return Client(write_key=key, host=url, on_error=on_error, max_retries=retries, upload_interval=0.1)


def rudder_client(url: str, key: str, on_error: Callable[..., None], retries: int = 0) -> object:
    from rudderstack.analytics import Client

    return Client(
        write_key=key, host=url, on_error=on_error, max_retries=retries, upload_interval=0.1
    )  # gzips


@pytest.mark.parametrize("make_client", [segment_client, rudder_client], ids=["segment", "rudder"])
async def test_sdk_events_arrive_exactly(make_client, ingest_url, tenant, read_events) -> None:
    errors: list[object] = []
    client = make_client(ingest_url, tenant.write_key, lambda error, _batch: errors.append(error))
    try:
        await asyncio.to_thread(send_with, client)
    finally:
        await asyncio.to_thread(client.shutdown)  # type: ignore[attr-defined]
    assert not errors
    records = {event.message_id: (key, event) for key, event in await read_events(3)}
    assert set(records) == {"t-1", "i-1", "p-1"}
    assert {key for key, _ in records.values()} == {f"{tenant.workspace_id}:user-1".encode()}
    track, identify, page = records["t-1"][1], records["i-1"][1], records["p-1"][1]
    assert (track.type, track.event, track.properties) == (
        "track",
        "Product Added",
        {"product_id": "p1", "price": 12.5},
    )
    assert (identify.type, identify.traits) == ("identify", {"plan": "trial"})
    assert (page.type, page.name, page.properties["url"]) == (
        "page",
        "Checkout",
        "https://shop.example/checkout",
    )
    for event in (track, identify, page):
        assert event.workspace_id == tenant.workspace_id and event.user_id == "user-1"
        assert event.context["library"]["name"] == "analytics-python"  # both SDKs call themselves that
        assert event.sent_at is not None and event.original_timestamp is not None


def send_one_hostile_among_good(client: object) -> None:
    client.track(user_id="user-1", event="Good 1", message_id="g-1")  # type: ignore[attr-defined]
    client.track(user_id="user-\x00", event="Hostile", message_id="h-1")  # type: ignore[attr-defined]
    client.track(user_id="user-1", event="Good 2", message_id="g-2")  # type: ignore[attr-defined]
    client.flush()  # type: ignore[attr-defined]


@pytest.mark.parametrize("make_client", [segment_client, rudder_client], ids=["segment", "rudder"])
async def test_an_sdk_batch_with_one_hostile_event_delivers_the_others_once(
    make_client, ingest_url, tenant, read_events
) -> None:
    """The 200 listing the rejected event is a success to the SDKs: no error, no retry (they
    retry 5xx and 429; refusing the whole batch would have lost the good events with it)."""
    errors: list[object] = []
    # with retries on, a batch the SDK took for a failure would repeat the good events
    client = make_client(ingest_url, tenant.write_key, lambda error, _batch: errors.append(error), retries=3)
    try:
        await asyncio.to_thread(send_one_hostile_among_good, client)
    finally:
        await asyncio.to_thread(client.shutdown)  # type: ignore[attr-defined]
    assert not errors
    async with httpx.AsyncClient(base_url=ingest_url, auth=httpx.BasicAuth(tenant.write_key, "")) as http:
        marker = await http.post("/v1/track", json={"userId": "user-1", "event": "Marker", "messageId": "mk"})
        assert marker.status_code == 200
    records = await read_events(3)
    assert [event.message_id for _, event in records] == ["g-1", "g-2", "mk"]  # one partition: one key
