"""What the browser tests read back from the real stack: the events topic as ingest wrote it
and the segmenter's profile of a visitor (its profile API, as GDPR export reads it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
from prometheus_client.parser import text_string_to_metric_families

from retarget.common.schemas import TrackedEvent, TriggerFired
from retarget.common.topics import Topics
from retarget.devstack.topic_reader import read_to_end

_events = msgspec.json.Decoder(TrackedEvent)
_triggers = msgspec.json.Decoder(TriggerFired)


async def events_on_topic(bootstrap: str, prefix: str) -> list[tuple[bytes, TrackedEvent]]:
    """Every event on the prefix's events topic now, as (key, event). Ingest answers 200 only
    once Kafka acknowledged, so an accepted call is here when its answer has come back."""
    return [(r.key, _events.decode(r.value)) for r in await read_to_end(bootstrap, Topics(prefix).events)]


async def raw_events(bootstrap: str, prefix: str) -> list[bytes]:
    """The events topic's records as published (to look for what must not be there at all)."""
    return [r.value for r in await read_to_end(bootstrap, Topics(prefix).events)]


async def triggers_to(bootstrap: str, prefix: str, address: str) -> list[TriggerFired]:
    """The campaigns fired for `address` so far, in order (one visitor's stay in one partition)."""
    found = (_triggers.decode(r.value) for r in await read_to_end(bootstrap, Topics(prefix).triggers))
    return [t for t in found if t.recipient.email == address]


async def profile_of(segmenter_url: str, workspace_id: str, profile_id: str) -> dict[str, Any] | None:
    """The stored profile (following a merge into the userId), or None when none is held."""
    async with httpx.AsyncClient(base_url=segmenter_url, timeout=10) as http:
        for _ in range(3):  # a merge leaves a redirect; never more than a hop or two
            answer = await http.get(f"/profiles/{workspace_id}/{profile_id}")
            if answer.status_code == 404:
                return None
            answer.raise_for_status()
            body: dict[str, Any] = answer.json()
            if "merged_into" not in body:
                return body
            profile_id = body["merged_into"]
    raise AssertionError(f"profile {profile_id} redirects on and on")


async def ingest_answers(ops_url: str, status: int) -> float:
    """How many event requests (/v1/…) ingest answered with `status`, from its /metrics."""
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{ops_url}/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "retarget_ingest_requests_total"
        and sample.labels.get("status") == str(status)
        and sample.labels.get("route", "").startswith("/v1/")
    )


async def profile_once(
    segmenter_url: str, workspace_id: str, profile_id: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The profile once `done(profile)` holds: the segmenter applies what ingest published a
    moment later, so a test polls for the state its last event brings (generous deadline)."""
    deadline = time.monotonic() + 60
    while True:
        profile = await profile_of(segmenter_url, workspace_id, profile_id)
        if profile is not None and done(profile):
            return profile
        assert time.monotonic() < deadline, f"profile {profile_id} after 60 s: {profile}"
        await asyncio.sleep(0.3)
