"""Hostile input at ingest's door, against the real server, Kafka and PostgreSQL: every bad
request is a 4xx naming the problem (never a 5xx), nothing bad reaches the events topic, and
a bad event never costs its batch's good ones.

"Nothing published" is shown by posting a marker event afterwards: the topic is this
test's own, so its first records must be the marker and the good events, nothing else.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from retarget.ingest import http_limits

from .conftest import EventReader, Tenant, free_port

pytestmark = pytest.mark.integration

DEEP_PROPERTIES = b'{"a":' * 1000 + b"{}" + b"}" * 1000


def auth(key: str) -> httpx.BasicAuth:
    return httpx.BasicAuth(key, "")


async def only_these_were_published(
    read_events: EventReader, client: httpx.AsyncClient, *events: str
) -> None:
    marker = await client.post("/v1/track", json={"userId": "marker", "event": "Marker"})
    assert marker.status_code == 200
    found = await read_events(len(events) + 1)
    assert sorted(e.event or "" for _, e in found) == sorted([*events, "Marker"])  # partitions interleave


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"anonymousId": "visitor\x00", "event": "e"}, "anonymousId"),
        ({"userId": "u" * 10_000, "event": "e"}, "userId"),
        ({"userId": "u", "event": "Viewed\r\nBcc: x@example.com"}, "event"),
        ({"userId": "u", "event": "e", "messageId": "m\x00"}, "messageId"),
        # the skew correction's arithmetic overflowed: it was a 500
        (
            {
                "userId": "u",
                "event": "e",
                "timestamp": "9999-12-31T23:59:59Z",
                "sentAt": "0001-01-01T00:00:00Z",
            },
            "sentAt",
        ),
    ],
)
async def test_hostile_single_events_are_400s_naming_the_field_and_never_published(
    ingest_url: str, tenant: Tenant, read_events: EventReader, body: dict, field: str
) -> None:
    async with httpx.AsyncClient(base_url=ingest_url, auth=auth(tenant.write_key)) as client:
        response = await client.post("/v1/track", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["field"] == field
        await only_these_were_published(read_events, client)


async def test_properties_nested_1000_deep_are_a_400_not_a_500(
    ingest_url: str, tenant: Tenant, read_events: EventReader
) -> None:
    body = b'{"userId":"u","event":"e","properties":' + DEEP_PROPERTIES + b"}"
    async with httpx.AsyncClient(base_url=ingest_url, auth=auth(tenant.write_key)) as client:
        response = await client.post("/v1/track", content=body)
        assert response.status_code == 400 and "nested" in response.json()["message"]
        await only_these_were_published(read_events, client)


async def test_a_batch_keeps_its_good_events_and_lists_the_hostile_ones_by_index(
    ingest_url: str, tenant: Tenant, read_events: EventReader
) -> None:
    items = [
        b'{"type":"track","userId":"u","event":"Good 1"}',
        b'{"type":"track","anonymousId":"a\\u0000","event":"e"}',
        b'{"type":"track","userId":"u","event":"e","timestamp":"9999-12-31T23:59:59Z"}',
        b'{"type":"track","userId":"u","event":"e","properties":' + DEEP_PROPERTIES + b"}",
        b'{"type":"track","userId":"' + b"x" * 10_000 + b'","event":"e"}',
        b'{"type":"track","userId":"u","event":"Good 2"}',
    ]
    body = b'{"sentAt":"0001-01-01T00:00:00Z","batch":[' + b",".join(items) + b"]}"
    async with httpx.AsyncClient(base_url=ingest_url, auth=auth(tenant.write_key)) as client:
        response = await client.post(
            "/v1/batch", content=body.replace(b'"sentAt":"0001-01-01T00:00:00Z",', b"")
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["accepted"] == 2
        assert [(r["index"], r.get("field")) for r in answer["rejected"]] == [
            (1, "anonymousId"),
            (2, "timestamp"),
            (3, None),
            (4, "userId"),
        ]
        # the batch's own sentAt in year 1: the skew correction would overflow; every event is refused
        all_bad = await client.post("/v1/batch", content=body)
        assert all_bad.status_code == 400 and all_bad.json()["code"] == "no_valid_events"
        assert {r.get("field") for r in all_bad.json()["rejected"]} >= {"sentAt"}
        await only_these_were_published(read_events, client, "Good 1", "Good 2")


async def test_strings_that_are_not_utf8_are_400s_and_cost_only_their_own_event(
    ingest_url: str, tenant: Tenant, read_events: EventReader
) -> None:
    async with httpx.AsyncClient(base_url=ingest_url, auth=auth(tenant.write_key)) as client:
        response = await client.post("/v1/track", content=b'{"userId":"u\xff","event":"e"}')
        assert response.status_code == 400 and "UTF-8" in response.json()["message"]
        batch = b'{"batch":[{"type":"track","userId":"\xc3","event":"e"},{"type":"track","userId":"u","event":"Good"}]}'
        response = await client.post("/v1/batch", content=batch)
        assert response.status_code == 200 and [r["index"] for r in response.json()["rejected"]] == [0]
        await only_these_were_published(read_events, client, "Good")


async def test_a_batch_context_copied_into_a_thousand_events_is_refused_before_publishing(
    ingest_url: str, tenant: Tenant, read_events: EventReader
) -> None:
    # the attack: a 431 KB request that published 382 MiB (the context copied into each event)
    event = b'{"type":"track","userId":"u","event":"e"}'
    context = b'{"page":{"title":"' + b"x" * 390_000 + b'"}}'
    body = b'{"context":' + context + b',"batch":[' + b",".join([event] * 1000) + b"]}"
    assert len(body) < 500 * 1024
    async with httpx.AsyncClient(base_url=ingest_url, auth=auth(tenant.write_key), timeout=30) as client:
        response = await client.post("/v1/batch", content=body)
        assert response.status_code == 413 and response.json()["field"] == "context"
        # with a context small enough to copy, each event is still sized as published
        ok = await client.post(
            "/v1/batch",
            json={
                "context": {"c": "y" * 20_000},
                "batch": [
                    {
                        "type": "track",
                        "userId": "u",
                        "event": "Too big merged",
                        "properties": {"p": "z" * 20_000},
                    },
                    {"type": "track", "userId": "u", "event": "Fits"},
                ],
            },
        )
        assert ok.status_code == 200 and [r["index"] for r in ok.json()["rejected"]] == [0]
        await only_these_were_published(read_events, client, "Fits")


async def test_an_unsubscribe_post_with_too_many_form_fields_is_a_400(ingest_url: str) -> None:
    form = "&".join(f"f{i}=v" for i in range(11))
    async with httpx.AsyncClient(base_url=ingest_url) as client:
        response = await client.post(
            "/t/u/any-token", content=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
    assert response.status_code == 400


async def raw_request(port: int, head: bytes, body: bytes = b"") -> bytes:
    """Send a request over a plain socket; what the server answered before closing (or b"")."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for start in range(0, len(head), 64 * 1024):
            writer.write(head[start : start + 64 * 1024])
            await writer.drain()
        writer.write(body)
        await writer.drain()
    except ConnectionError:
        pass  # the server closed on us mid-head: read what it said first
    try:
        async with asyncio.timeout(30):
            return await reader.read()
    except ConnectionError:
        return b""
    finally:
        writer.close()


async def test_a_huge_header_is_refused_with_431_and_the_event_not_published(
    ingest_url: str, ingest_settings, tenant: Tenant, read_events: EventReader
) -> None:
    body = b'{"userId":"u","event":"Padded"}'
    key = httpx.BasicAuth(tenant.write_key, "")._auth_header.encode()

    def head(padding: int) -> bytes:
        return (
            b"POST /v1/track HTTP/1.1\r\nHost: ingest\r\nContent-Type: application/json\r\n"
            b"Authorization: " + key + b"\r\nX-Pad: " + b"p" * padding + b"\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        )

    answer = await raw_request(ingest_settings.port, head(8 * 1024 * 1024), body)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer[:200]
    fits = await raw_request(ingest_settings.port, head(8 * 1024), body)
    assert fits.startswith(b"HTTP/1.1 200"), fits[:200]
    async with httpx.AsyncClient(base_url=ingest_url, auth=auth(tenant.write_key)) as client:
        await only_these_were_published(read_events, client, "Padded")


@pytest.mark.parametrize("padding", [17 * 1024, 60 * 1024])
async def test_a_head_over_the_bound_is_a_431_even_when_it_arrives_in_one_read(
    ingest_url: str, ingest_settings, tenant: Tenant, read_events: EventReader, padding: int
) -> None:
    # the chunk count alone let a 17-60 KB head through when it was read at once: a 200
    body = b'{"userId":"u","event":"Padded"}'
    key = httpx.BasicAuth(tenant.write_key, "")._auth_header.encode()
    request = (
        b"POST /v1/track HTTP/1.1\r\nHost: ingest\r\nContent-Type: application/json\r\n"
        b"Authorization: " + key + b"\r\nX-Pad: " + b"p" * padding + b"\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", ingest_settings.port)
    writer.write(request)  # one write, so the server reads the whole head at once
    async with asyncio.timeout(30):
        answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    async with httpx.AsyncClient(base_url=ingest_url, auth=auth(tenant.write_key)) as client:
        await only_these_were_published(read_events, client)


async def test_big_bodies_on_a_kept_alive_connection_are_not_mistaken_for_a_big_head(
    ingest_url: str, tenant: Tenant, read_events: EventReader
) -> None:
    batch = {
        "batch": [{"type": "track", "userId": "u", "event": "Big", "properties": {"p": "x" * 30_000}}] * 14
    }
    async with httpx.AsyncClient(base_url=ingest_url, auth=auth(tenant.write_key)) as client:
        for _ in range(3):  # the same connection: each request's head follows a ~420 KB body
            response = await client.post("/v1/batch", json=batch)
            assert (response.status_code, response.json()) == (200, {"success": True})
        await only_these_were_published(read_events, client, *["Big"] * 42)


async def _send_head_pieces(port: int, pieces: list[bytes], pause_s: float = 0.05) -> bytes:
    """Write the pieces with pauses (so the server reads them apart); what it answers in 10 s."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(pause_s)
    except ConnectionError:
        pass  # refused mid-head: read what it said
    try:
        async with asyncio.timeout(10):
            return await reader.read()
    except (TimeoutError, ConnectionError):
        return b""
    finally:
        writer.close()


async def test_a_head_that_never_ends_is_refused_once_past_the_bound(
    ingest_url: str, ingest_settings
) -> None:
    # httptools holds a header until it ends: without counting the chunks, this waits, growing
    start = b"GET /healthz HTTP/1.1\r\nHost: ingest\r\nX-Pad: "
    # 17 KB of a head that doesn't end, and nothing more (bytes sent after the close reset it)
    answer = await _send_head_pieces(ingest_settings.port, [start, b"p" * 8192, b"p" * 8800])
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]


async def test_heads_read_in_pieces_on_a_kept_alive_connection_are_counted_per_request(
    ingest_url: str, ingest_settings
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", ingest_settings.port)
    try:
        for _ in range(4):  # 4 × 10 KB of head read in two pieces: only one request's counts
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: ingest\r\nX-Pad: " + b"p" * 10_000)
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"\r\n\r\n")
            async with asyncio.timeout(10):
                answer = await reader.readuntil(b'{"status":"ok"}')
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    finally:
        writer.close()


async def test_the_head_bound_is_the_setting(ingest_settings, serve) -> None:
    settings = ingest_settings.model_copy(
        update={"max_header_bytes": 4096, "port": free_port(), "ingest_ops_port": free_port()}
    )
    async with serve(settings):
        head = b"GET /healthz HTTP/1.1\r\nHost: ingest\r\nX-Pad: " + b"p" * 8192 + b"\r\n\r\n"
        answer = await _send_head_pieces(settings.port, [head])
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]


async def test_a_head_not_complete_in_time_is_a_408(ingest_url: str, ingest_settings, monkeypatch) -> None:
    # a head trickled (or left half sent) held its connection for ever: no timeout covered it
    monkeypatch.setattr(http_limits, "HEAD_TIMEOUT_S", 1.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", ingest_settings.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: ingest\r\nX-Slow: ")
        await writer.drain()
        async with asyncio.timeout(5):
            answer = await reader.read()
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    async with httpx.AsyncClient(base_url=ingest_url) as client:  # a prompt head is still served
        assert (await client.get("/healthz")).status_code == 200
