"""The faust agent itself, driven through faust's agent.test_context() with memory tables."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from prometheus_client import REGISTRY

from retarget.common.schemas import DeadLettered, encode
from retarget.segmenter.app import create_app
from retarget.segmenter.settings import SegmenterSettings
from retarget.segmenter.state import profile_decoder
from retarget.segmenter.testing import identify, track

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


async def test_events_reach_the_tables_and_poison_goes_to_the_dead_letter_topic():
    settings = SegmenterSettings(store="memory://", topic_prefix="tagent", topic_partitions=2)
    sent: list[tuple[str, bytes, bytes]] = []

    async def send(output: str, key: bytes, value: bytes, wait: bool, partition: int | None = None) -> None:
        sent.append((output, key, value))

    app = create_app(settings, send=send)
    app.finalize()
    agent = next(iter(app.agents.values()))
    counted = REGISTRY.get_sample_value("retarget_dead_letters_total", {"stage": "segmenter"})
    assert counted is not None  # the series exists from the start: an alert sees the first one
    async with agent.test_context() as tested:
        await tested.put(encode(identify(T0, mid="m1", email="ann@example.com")), key=b"ws:anon-1")
        await tested.put(b"\xff not json", key=b"ws:anon-1")
        add = track("Product Added", T0, mid="m2", product_id="p1", name="Boots", price=80)
        await tested.put(encode(add), key=b"ws:anon-1")
        await tested.put(encode(add), key=b"ws:anon-1")  # a duplicate

    profile = profile_decoder.decode(app.tables["profiles"].get(b"ws:anon-1"))
    assert profile.email == "ann@example.com" and profile.cart["p1"].line.quantity == 1
    assert (
        app.tables["due"].get(b"ws:anon-1") == profile.pending["abandoned_cart"].due_at.isoformat().encode()
    )
    (dead,) = [s for s in sent if s[0] == "dead_letter"]
    letter = msgspec.json.decode(dead[2], type=DeadLettered)
    assert letter.stage == "segmenter" and "not a TrackedEvent" in letter.reason
    assert REGISTRY.get_sample_value("retarget_dead_letters_total", {"stage": "segmenter"}) == counted + 1
    assert letter.value_encoding == "base64" and dead[1] == b"ws:anon-1"
