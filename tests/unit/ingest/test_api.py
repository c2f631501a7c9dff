"""The HTTP contract, end to end through the ASGI app, with fakes for Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import gc
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import pytest

from retarget.common.schemas import TrackedEvent
from retarget.common.testing import FakeClock
from retarget.ingest import metrics
from retarget.ingest.api import event_endpoints
from retarget.ingest.bootstrap import bootstrap
from retarget.ingest.main import create_app
from retarget.ingest.settings import IngestSettings
from retarget.ingest.testing import FakeKeys, FakePublisher

KEY = "wk_test_key_1"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}


@dataclass
class Harness:
    client: httpx.AsyncClient  # the public port
    publisher: FakePublisher
    keys: FakeKeys
    ops: httpx.AsyncClient  # the operations port

    def events(self) -> list[TrackedEvent]:
        return [msgspec.json.decode(value, type=TrackedEvent) for _, _, value in self.publisher.sent]


@pytest.fixture
async def ingest() -> AsyncIterator[Harness]:
    settings = IngestSettings(
        topic_prefix="unit", max_batch_events=5, rate_limit_events_per_s=1, rate_limit_burst=10
    )
    publisher, keys = FakePublisher(), FakeKeys({KEY: "ws1", "wk_other": "ws2"})
    app = create_app(
        settings, services=bootstrap(settings, publisher=publisher, key_lookup=keys, clock=FakeClock())
    )
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://ingest") as client,
        httpx.AsyncClient(transport=transport, base_url=f"http://ingest:{settings.ingest_ops_port}") as ops,
    ):
        yield Harness(client, publisher, keys, ops)


async def test_track_is_published_keyed_by_visitor_and_answered_like_segment(ingest: Harness) -> None:
    response = await ingest.client.post(
        "/v1/track", json={"anonymousId": "a1", "event": "Cart Viewed", "messageId": "m1"}, headers=AUTH
    )
    assert (response.status_code, response.json()) == (200, {"success": True})
    topic, key, _ = ingest.publisher.sent[0]
    assert (topic, key) == ("unit.events.v1", b"ws1:a1")
    [event] = ingest.events()
    assert (event.type, event.event, event.message_id, event.workspace_id) == (
        "track",
        "Cart Viewed",
        "m1",
        "ws1",
    )


async def test_write_key_in_the_body_works_and_a_wrong_key_is_a_401(ingest: Harness) -> None:
    body = {"userId": "u1", "traits": {"plan": "pro"}}
    assert (await ingest.client.post("/v1/identify", json=body | {"writeKey": "wk_other"})).status_code == 200
    assert ingest.events()[0].workspace_id == "ws2"
    for headers, extra in (({}, {"writeKey": "wk_nope"}), ({}, {})):
        response = await ingest.client.post("/v1/identify", json=body | extra, headers=headers)
        assert response.status_code == 401 and response.json()["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event": "x"}, "userId"),
        ({"userId": "u", "event": "x", "messageId": "m" * 100}, "messageId"),
        ({"userId": {"id": 1}, "event": "x"}, "userId"),
        ({"userId": "u", "event": "x", "properties": [1]}, "properties"),
    ],
)
async def test_invalid_events_are_400s_naming_the_field(ingest: Harness, body: dict, field: str) -> None:
    response = await ingest.client.post("/v1/track", json=body, headers=AUTH)
    assert response.status_code == 400 and response.json()["field"] == field
    assert not ingest.publisher.sent


async def test_invalid_json_and_bad_gzip_are_400s(ingest: Harness) -> None:
    assert (await ingest.client.post("/v1/page", content=b"{oops", headers=AUTH)).status_code == 400
    headers = AUTH | {"Content-Encoding": "gzip"}
    assert (await ingest.client.post("/v1/page", content=b"not gzip", headers=headers)).status_code == 400


async def test_gzip_bodies_are_accepted(ingest: Harness) -> None:
    body = gzip.compress(json.dumps({"anonymousId": "a", "name": "Home"}).encode())
    response = await ingest.client.post("/v1/page", content=body, headers=AUTH | {"Content-Encoding": "gzip"})
    assert response.status_code == 200 and ingest.events()[0].name == "Home"


async def test_an_event_over_32_kb_is_a_413_naming_the_limit(ingest: Harness) -> None:
    body = {"userId": "u", "event": "x", "properties": {"blob": "x" * 33_000}}
    response = await ingest.client.post("/v1/track", json=body, headers=AUTH)
    assert response.status_code == 413 and response.json()["limit"] == 32 * 1024


async def test_a_batch_accepts_the_valid_events_and_lists_the_rejected(ingest: Harness) -> None:
    batch = [
        {"type": "track", "userId": "u", "event": "Product Viewed"},
        {"type": "track", "event": "no identity"},
        {"type": "identify", "anonymousId": "a", "traits": {"x": 1}},
        {"type": "track", "userId": "u", "event": "big", "properties": {"b": "x" * 33_000}},
        "not an object",
    ]
    response = await ingest.client.post(
        "/v1/batch", json={"batch": batch, "context": {"library": {"name": "t"}}}, headers=AUTH
    )
    assert response.status_code == 200
    answer = response.json()
    assert answer["success"] is True and answer["accepted"] == 2
    assert [(r["index"], r["code"], r.get("field")) for r in answer["rejected"]] == [
        (1, "invalid_field", "userId"),
        (3, "payload_too_large", None),
        (4, "invalid_payload", None),
    ]
    assert [e.type for e in ingest.events()] == ["track", "identify"]
    assert ingest.events()[1].context == {"library": {"name": "t"}}


async def test_a_batch_with_no_valid_event_is_a_400_listing_them(ingest: Harness) -> None:
    response = await ingest.client.post("/v1/batch", json={"batch": [{"type": "track"}]}, headers=AUTH)
    assert response.status_code == 400 and response.json()["rejected"][0]["index"] == 0


async def test_batch_event_count_and_size_limits(ingest: Harness) -> None:
    six = [{"type": "track", "userId": "u", "event": "e"}] * 6
    response = await ingest.client.post("/v1/batch", json={"batch": six}, headers=AUTH)
    assert response.status_code == 400 and response.json()["limit"] == 5
    huge = {"batch": [{"type": "track", "userId": "u", "event": "e", "properties": {"b": "x" * 600_000}}]}
    response = await ingest.client.post("/v1/batch", json=huge, headers=AUTH)
    assert response.status_code == 413 and response.json()["limit"] == 500 * 1024


async def test_the_batch_integrations_count_in_the_copies_bound_too(ingest: Harness) -> None:
    many = {
        "batch": [{"type": "track", "userId": "u", "event": "e"}] * 5,
        "integrations": {"b": "x" * 420_000},
    }
    response = await ingest.client.post("/v1/batch", json=many, headers=AUTH)
    assert response.status_code == 413 and response.json()["limit"] == 4 * 500 * 1024
    assert ingest.publisher.sent == []


async def test_an_event_just_under_32_kb_is_accepted_with_what_ingest_stamps_on_it(ingest: Harness) -> None:
    event = {"userId": "u", "event": "e", "properties": {"b": ""}}
    padding = 32 * 1024 - len(json.dumps(event, separators=(",", ":"))) - 8
    event["properties"] = {"b": "x" * padding}
    body = json.dumps(event, separators=(",", ":")).encode()
    assert 32 * 1024 - 16 < len(body) <= 32 * 1024
    response = await ingest.client.post("/v1/track", content=body, headers=AUTH)
    assert response.status_code == 200, response.text  # published, it is over 32 KB: the stamps
    assert len(ingest.publisher.sent) == 1


async def test_an_empty_batch_is_a_400_naming_it(ingest: Harness) -> None:
    response = await ingest.client.post("/v1/batch", json={"batch": []}, headers=AUTH)
    assert response.status_code == 400 and response.json()["field"] == "batch"


async def test_kafka_unavailable_is_a_503_with_retry_after_and_nothing_accepted(ingest: Harness) -> None:
    ingest.publisher.down = True
    response = await ingest.client.post("/v1/track", json={"userId": "u", "event": "e"}, headers=AUTH)
    assert response.status_code == 503 and response.headers["Retry-After"] == "2"
    ready = await ingest.ops.get("/readyz")
    assert ready.status_code == 503 and ready.json()["problems"] == {"kafka": "down"}


async def test_a_key_over_its_rate_is_a_429_with_retry_after(ingest: Harness) -> None:
    batch = {"batch": [{"type": "track", "userId": "u", "event": "e"}] * 5}
    for _ in range(2):
        assert (await ingest.client.post("/v1/batch", json=batch, headers=AUTH)).status_code == 200
    response = await ingest.client.post("/v1/batch", json=batch, headers=AUTH)
    assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1
    other = await ingest.client.post("/v1/track", json={"userId": "u", "event": "e", "writeKey": "wk_other"})
    assert other.status_code == 200


async def test_auth_is_cached(ingest: Harness) -> None:
    for _ in range(5):
        await ingest.client.post("/v1/track", json={"userId": "u", "event": "e"}, headers=AUTH)
    assert ingest.keys.lookups == 1


async def test_ops_endpoints(ingest: Harness) -> None:
    assert (await ingest.ops.get("/healthz")).json() == {"status": "ok"}
    assert (await ingest.ops.get("/readyz")).json() == {"ready": True, "problems": {}}
    await ingest.client.post("/v1/track", json={"userId": "u", "event": "e"}, headers=AUTH)
    text = (await ingest.ops.get("/metrics")).text
    assert 'retarget_ingest_requests_total{route="/v1/track",status="200"}' in text
    assert 'retarget_ingest_events_total{outcome="accepted",reason="",type="track"}' in text
    assert "retarget_ingest_produce_seconds_bucket" in text


async def test_hostile_events_in_a_batch_are_listed_and_the_good_ones_accepted(ingest: Harness) -> None:
    batch = [
        {"type": "track", "anonymousId": "a\x00b", "event": "e"},
        {"type": "track", "userId": "u", "event": "e", "timestamp": "9999-12-31T23:59:59Z"},
        {"type": "track", "userId": "u", "event": "e"},
        {"type": "track", "userId": "u", "event": "e", "properties": "DEEP"},
        {"type": "track", "userId": "x" * 10_000, "event": "e"},
    ]
    deep = b'{"a":' * 1000 + b"{}" + b"}" * 1000  # too deep for json.dumps to write it
    body = json.dumps({"batch": batch, "sentAt": "2026-01-05T12:00:00Z"}).encode().replace(b'"DEEP"', deep)
    response = await ingest.client.post("/v1/batch", content=body, headers=AUTH)
    assert response.status_code == 200
    answer = response.json()
    assert answer["accepted"] == 1
    assert [(r["index"], r.get("field")) for r in answer["rejected"]] == [
        (0, "anonymousId"),
        (1, "timestamp"),
        (3, None),  # past the decoder's own limit: "body is nested too deeply"
        (4, "userId"),
    ]
    assert len(ingest.publisher.sent) == 1


async def test_a_batch_context_copied_into_every_event_is_bounded(ingest: Harness) -> None:
    context = {"blob": "x" * 20_000}  # small enough for one event, not for copies into many
    small = {"batch": [{"type": "track", "userId": "u", "event": "e"}], "context": context}
    assert (await ingest.client.post("/v1/batch", json=small, headers=AUTH)).status_code == 200
    many = {"batch": [{"type": "track", "userId": "u", "event": "e"}] * 5, "context": {"b": "x" * 420_000}}
    response = await ingest.client.post("/v1/batch", json=many, headers=AUTH)
    assert response.status_code == 413 and response.json()["field"] == "context"
    assert len(ingest.publisher.sent) == 1


async def test_an_event_too_big_once_the_batch_context_is_merged_in_is_rejected(ingest: Harness) -> None:
    own = {"type": "track", "userId": "u", "event": "e", "properties": {"b": "x" * 20_000}}
    body = {
        "batch": [own, {"type": "track", "userId": "u", "event": "small"}],
        "context": {"c": "y" * 20_000},
    }
    response = await ingest.client.post("/v1/batch", json=body, headers=AUTH)
    assert response.status_code == 200
    [rejected] = response.json()["rejected"]
    assert (rejected["index"], rejected["code"]) == (0, "payload_too_large")
    assert [e.event for e in ingest.events()] == ["small"]


async def test_ops_routes_answer_only_on_the_ops_port_and_the_api_only_on_the_public_one(
    ingest: Harness,
) -> None:
    for path in ("/metrics", "/readyz", "/openapi.json", "/docs"):
        assert (await ingest.client.get(path)).status_code == 404, path
        assert (await ingest.ops.get(path)).status_code == 200, path
    track = {"userId": "u", "event": "e"}
    assert (await ingest.ops.post("/v1/track", json=track, headers=AUTH)).status_code == 404
    assert (await ingest.ops.get("/t/o/x.gif")).status_code == 404
    assert (await ingest.client.post("/v1/track", json=track, headers=AUTH)).status_code == 200
    assert (await ingest.client.get("/healthz")).status_code == 200


async def test_event_routes_answer_and_count_every_outcome_and_leave_nothing_in_flight(
    ingest: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event routes are served ahead of the middleware stack (main.IngestApp): their own
    code must count requests, balance the in-flight gauge and turn a failure nobody foresaw
    into the same JSON 500, never an exception escaping to the server."""
    event = {"userId": "u", "event": "e"}
    assert (await ingest.client.post("/v1/t", json=event, headers=AUTH)).status_code == 200
    assert (await ingest.client.post("/v1/t", json=event)).status_code == 401

    async def broken(topic: str, records: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(ingest.publisher, "publish", broken)
    response = await ingest.client.post("/v1/t", json=event, headers=AUTH)
    assert (response.status_code, response.json()["code"]) == (500, "internal_error")
    text = (await ingest.ops.get("/metrics")).text
    for status in (200, 401, 500):
        assert f'retarget_ingest_requests_total{{route="/v1/t",status="{status}"}}' in text
    assert "retarget_ingest_in_flight_requests 1.0" in text  # the scrape itself


async def _raw_track_post(
    ingest: Harness, headers: list[tuple[bytes, bytes]], receive: Callable[[], Awaitable[dict[str, object]]]
) -> list[dict[str, Any]]:
    """POST /v1/track straight into the app as raw ASGI messages (what httpx won't send);
    the messages the app sent back."""
    app = ingest.client._transport.app  # type: ignore[attr-defined]
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/track",
        "headers": headers,
        "server": ("ingest", 80),
    }
    await app(scope, receive, send)
    return sent


async def test_a_client_that_leaves_mid_body_gets_a_499_and_nothing_is_published(ingest: Harness) -> None:
    messages = iter(
        [{"type": "http.request", "body": b'{"userId":', "more_body": True}, {"type": "http.disconnect"}]
    )

    async def receive() -> dict[str, object]:
        return next(messages)

    sent = await _raw_track_post(ingest, [(b"authorization", AUTH["Authorization"].encode())], receive)
    assert sent[0]["status"] == 499
    assert ingest.publisher.sent == []


async def test_startup_leaves_what_it_made_out_of_the_collectors_scans() -> None:
    # full collections every few thousand events scanned the whole app's objects: p99 of a
    # batch doubled (bench/RESULTS.md); once started, what exists stays out of their scans
    settings = IngestSettings(topic_prefix="unit")
    app = create_app(settings, services=bootstrap(settings, publisher=FakePublisher(), key_lookup=FakeKeys()))
    gc.unfreeze()
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


async def test_a_basic_header_with_bytes_outside_ascii_is_a_401_not_a_500(ingest: Harness) -> None:
    # httpx refuses to send such a header, a raw client does: uvicorn hands it over as latin-1
    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b'{"userId":"u","event":"e"}'}

    headers = [(b"content-type", b"application/json"), (b"authorization", b"Basic \xff\xfe")]
    sent = await _raw_track_post(ingest, headers, receive)
    assert sent[0]["status"] == 401
    assert ingest.publisher.sent == []


async def test_a_body_that_never_ends_is_a_408_that_closes_the_connection(
    ingest: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # uvicorn bounds no body's time (http_limits.py bounds the head's): a client that declared
    # 30 KB and then trickled, or stopped, held its request and connection for ever
    monkeypatch.setattr(event_endpoints, "BODY_TIMEOUT_S", 0.05)
    first = True

    async def receive() -> dict[str, object]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b'{"userId":', "more_body": True}
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    headers = [(b"content-type", b"application/json"), (b"authorization", AUTH["Authorization"].encode())]
    sent = await asyncio.wait_for(_raw_track_post(ingest, headers, receive), 5)
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["code"] == "request_timeout"
    assert ingest.publisher.sent == []


async def test_the_decoded_size_of_each_routes_bodies_is_observed(ingest: Harness) -> None:
    # the raw endpoints observe it themselves (the middleware path did it in the route)
    def observed(route: str) -> float:
        return metrics.PAYLOAD_BYTES.labels(route)._sum.get()  # type: ignore[no-any-return]

    before_one, before_batch = observed("/v1/i"), observed("/v1/import")
    body = b'{"userId":"u","traits":{}}'
    headers = AUTH | {"Content-Type": "application/json"}
    assert (await ingest.client.post("/v1/i", content=body, headers=headers)).status_code == 200
    batch = b'{"batch":[{"type":"track","userId":"u","event":"e"}]}'
    assert (await ingest.client.post("/v1/import", content=batch, headers=headers)).status_code == 200
    assert (observed("/v1/i") - before_one, observed("/v1/import") - before_batch) == (len(body), len(batch))


async def test_of_repeated_headers_the_first_counts_as_starlette_reads_them(ingest: Harness) -> None:
    other = "Basic " + base64.b64encode(b"wk_other:").decode()
    headers = [
        ("content-type", "application/json"),
        ("authorization", other),
        ("authorization", "Basic Zm9v"),
    ]
    response = await ingest.client.post("/v1/track", content=b'{"userId":"u","event":"e"}', headers=headers)
    assert response.status_code == 200
    assert ingest.events()[0].workspace_id == "ws2"
