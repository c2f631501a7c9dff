"""The demo's traffic generator: deterministic, realistic in shape, never splits a visitor."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from retarget.demo.traffic import visitors, whole_visitor_chunks

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def test_the_same_seed_gives_the_same_traffic():
    first = [v.events for v in visitors(50, seed=3, now=NOW)]
    assert first == [v.events for v in visitors(50, seed=3, now=NOW)]
    assert first != [v.events for v in visitors(50, seed=4, now=NOW)]


def test_behaviours_produce_the_events_the_campaigns_listen_for():
    people = list(visitors(400, seed=1, now=NOW))
    kinds = Counter(p.behaviour for p in people)
    assert {"browser", "cart_abandoner", "buyer", "trialist", "repeat_abandoner"} <= set(kinds)
    names = {p.behaviour: [e.get("event") for e in p.events] for p in people}
    assert "Order Completed" in names["buyer"] and "Trial Started" in names["trialist"]
    assert names["browser"].count("Product Viewed") == 3 and "Product Added" not in names["browser"]
    repeat = [p for p in people if p.behaviour == "repeat_abandoner"]
    assert repeat and all(p.events[2]["event"] == "Cart Abandoned" for p in repeat)
    assert all(p.events[2]["timestamp"] < p.events[3]["timestamp"] for p in repeat)


def test_message_ids_are_unique_and_visitors_are_never_split_across_batches():
    people = list(visitors(300, seed=2, now=NOW))
    ids = [e["messageId"] for p in people for e in p.events]
    assert len(ids) == len(set(ids))
    chunks = whole_visitor_chunks(people, max_events=40)
    assert all(len(c) <= 40 for c in chunks)
    chunk_of = {}
    for index, chunk in enumerate(chunks):
        for event in chunk:
            chunk_of.setdefault(event["anonymousId"], set()).add(index)
    assert all(len(found) == 1 for found in chunk_of.values())
    assert sum(len(c) for c in chunks) == sum(len(p.events) for p in people)
