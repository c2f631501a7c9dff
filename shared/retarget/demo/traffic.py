"""Realistic site traffic for the demo: visitors who browse, add to cart, identify, buy or start
trials, as Segment E-commerce v2 and B2B SaaS events.

`visitors(n, seed)` is pure (a seeded RNG, no I/O), so the same seed gives the same traffic
and the generator can be unit-tested; `post_traffic` sends it through ingest's /v1/batch.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from retarget.demo.history import add_history

CATALOG = [
    ("tent-2p", "Two-Person Tent", 249.0),
    ("bag-20", "Down Sleeping Bag", 189.0),
    ("boots-trail", "Trail Boots", 139.0),
    ("jacket-rain", "Rain Jacket", 119.0),
    ("stove-mini", "Camping Stove", 59.0),
    ("lamp-head", "Head Lamp", 29.0),
    ("pack-40", "40 L Backpack", 159.0),
    ("poles", "Trekking Poles", 79.0),
    ("mat-air", "Sleeping Mat", 89.0),
    ("bottle", "Insulated Bottle", 35.0),
]
SHOP = "https://shop.example"
DOMAINS = ["mail.example", "inbox.example", "post.example", "webmail.example", "customer.example"]

# share of visitors by behaviour; the rest only read pages
BEHAVIOURS = [
    ("browser", 0.30),  # views one product several times, never adds to cart
    ("cart_abandoner", 0.28),  # adds to cart and leaves
    ("repeat_abandoner", 0.05),  # abandoned a cart three weeks ago (history), and does it again
    ("buyer", 0.17),  # adds to cart and completes the order
    ("trialist", 0.10),  # signs up for a trial and doesn't convert
]


@dataclass
class Visitor:
    anonymous_id: str
    behaviour: str
    email: str | None
    events: list[dict[str, Any]] = field(default_factory=list)


def product(product_id: str, name: str, price: float) -> dict[str, Any]:
    return {
        "product_id": product_id,
        "sku": product_id.upper(),
        "name": name,
        "price": price,
        "currency": "USD",
        "quantity": 1,
        "url": f"{SHOP}/p/{product_id}",
        "image_url": f"{SHOP}/img/{product_id}.jpg",
    }


def visitors(
    n: int, *, seed: int = 7, now: datetime | None = None, history_days: int = 0
) -> Iterator[Visitor]:
    """`history_days`: also the visitors' past weeks, drawn from an intent (demo/history.py)."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    run = uuid.UUID(int=rng.getrandbits(128)).hex[:6]
    for i in range(n):
        behaviour = _pick(rng)
        anon = f"anon-{run}-{i}"
        identifies = behaviour in ("buyer", "trialist", "repeat_abandoner") or rng.random() < 0.75
        # a few typed a wrong address: the capture bounces `bounce*` addresses (a hard bounce)
        mailbox = "bounce" if rng.random() < 0.02 else "visitor"
        email = f"{mailbox}{i}.{run}@{rng.choice(DOMAINS)}" if identifies else None
        visitor = Visitor(anon, behaviour, email)
        event = _event_maker(visitor, rng, now)
        event("page", name="Home")
        item = product(*rng.choice(CATALOG))
        if email:
            first = rng.choice(["Robin", "Sam", "Alex", "Kim", "Jo", "Lee", "Max", "Ana"])
            event("identify", traits={"email": email, "firstName": first, "locale": "en-US"})
        if behaviour == "browser":
            for _ in range(3):
                event("track", "Product Viewed", properties=item)
        elif behaviour in ("cart_abandoner", "buyer", "repeat_abandoner"):
            if behaviour == "repeat_abandoner":
                # the platform's own record of an earlier abandonment (what abandoned_cart
                # itself records when its wait runs out): this one makes it the second
                event(
                    "track",
                    "Cart Abandoned",
                    properties={"value": item["price"]},
                    at=now - timedelta(days=21),
                )
            event("track", "Product Viewed", properties=item)
            event("track", "Product Added", properties=item)
            if behaviour == "buyer":
                event("track", "Checkout Started", properties={"value": item["price"], "currency": "USD"})
                event("track", "Order Completed", properties=order(rng, [item]))
        elif behaviour == "trialist":
            event("track", "Signed Up", properties={"plan": "pro"})
            event("track", "Trial Started", properties={"plan": "pro", "trial_days": 7})
        if history_days:
            add_history(visitor, days=history_days, seed=seed, index=i, now=now, catalog=CATALOG)
        yield visitor


def order(rng: random.Random, items: list[dict[str, Any]]) -> dict[str, Any]:
    total = round(sum(i["price"] * i["quantity"] for i in items), 2)
    return {
        "order_id": f"o-{rng.getrandbits(40):010x}",
        "revenue": total,
        "total": total,
        "currency": "USD",
        "products": items,
    }


def _pick(rng: random.Random) -> str:
    roll = rng.random()
    for name, share in BEHAVIOURS:
        if roll < share:
            return name
        roll -= share
    return "reader"


def _event_maker(visitor: Visitor, rng: random.Random, now: datetime) -> Callable[..., None]:
    def event(kind: str, name: str | None = None, at: datetime | None = None, **fields: Any) -> None:
        body: dict[str, Any] = {
            "type": kind,
            "anonymousId": visitor.anonymous_id,
            "messageId": f"{visitor.anonymous_id}-{len(visitor.events)}",
            "timestamp": (at or now).isoformat(),
            **fields,
        }
        if name and kind == "track":
            body["event"] = name
        elif name:
            body["name"] = name
        visitor.events.append(body)

    return event


def whole_visitor_chunks(people: list[Visitor], max_events: int = 100) -> list[list[dict[str, Any]]]:
    """Batches that never split a visitor: chunks are then sent concurrently, and each
    visitor's events still reach the events topic in the order they happened."""
    chunks: list[list[dict[str, Any]]] = [[]]
    for person in people:
        if chunks[-1] and len(chunks[-1]) + len(person.events) > max_events:
            chunks.append([])
        chunks[-1].extend(person.events)
    return [c for c in chunks if c]


async def post_chunks(
    client: httpx.AsyncClient,
    chunks: list[list[dict[str, Any]]],
    *,
    concurrency: int = 4,
    on_progress: Callable[[int], None] = lambda n: None,
) -> int:
    """POST each chunk to /v1/batch; returns how many events ingest accepted.

    429 and 503 are backpressure, not failure: wait as Retry-After says, then send again
    (the messageIds make a repeat harmless).
    """
    accepted = 0
    semaphore = asyncio.Semaphore(concurrency)

    async def send(chunk: list[dict[str, Any]]) -> None:
        nonlocal accepted
        async with semaphore:
            for attempt in range(6):
                response = await client.post("/v1/batch", json={"batch": chunk})
                if response.status_code in (429, 503):
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")) * (attempt + 1))
                    continue
                response.raise_for_status()
                accepted += len(chunk) - len(response.json().get("rejected", []))
                break
            else:
                raise RuntimeError(f"ingest kept answering {response.status_code}: {response.text[:200]}")
            on_progress(len(chunk))

    await asyncio.gather(*(send(c) for c in chunks))
    return accepted
