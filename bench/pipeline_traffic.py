"""The pipeline benchmark's traffic: visitors who identify and add to the cart, a known share of
whom then buy (no reminder), posted through ingest's /v1/batch at a steady rate.

`visitor_events` is pure; `post_steadily` keeps to the rate by the clock (the events due by
now are sent at every tick), so a slow ingest shows as fewer events/s in, never as a burst.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

ITEM = {"product_id": "tent-2p", "name": "Two-Person Tent", "price": 249.0, "currency": "USD", "quantity": 1}
DOMAINS = 50  # recipient domains: the outbound topic is keyed by domain, so many spread the load
TICK_S = 0.2
MAX_BATCH = 400  # events per request: well inside ingest's 500 kB and 2,500-event batch limits


def fires(n: int, fire_share: float) -> bool:
    """Visitor n abandons the cart (a reminder is due) or buys; spread evenly, not at random,
    so the count of reminders expected is exact."""
    return int((n + 1) * fire_share) > int(n * fire_share)


def visitor_events(run: str, n: int, fire_share: float, now: datetime) -> list[dict[str, Any]]:
    anon = f"pb-{run}-{n}"
    at = now.isoformat()

    def event(kind: str, index: int, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "anonymousId": anon, "messageId": f"{anon}-{index}", "timestamp": at, **fields}

    email = f"v{n}.{run}@d{n % DOMAINS}.bench.example"
    events = [
        event("identify", 0, traits={"email": email, "firstName": "Robin"}),
        event("track", 1, event="Product Added", properties=ITEM),
    ]
    if not fires(n, fire_share):
        order = {"order_id": f"o-{run}-{n}", "revenue": 249.0, "currency": "USD", "products": [ITEM]}
        events.append(event("track", 2, event="Order Completed", properties=order))
    return events


@dataclass
class Posted:
    visitors: int = 0
    firing: int = 0
    events_sent: int = 0
    events_accepted: int = 0
    failures: int = 0
    started: float = 0.0
    ended: float = 0.0
    last_error: str = ""


async def post_steadily(
    clients: Sequence[httpx.AsyncClient],
    *,
    run: str,
    rate: float,
    seconds: float,
    fire_share: float,
    concurrency: int = 8,
    on_tick: Callable[[Posted], None] = lambda posted: None,
) -> Posted:
    """Post `rate` events/s for `seconds` (whole visitors per batch), round-robin over the
    ingest processes' clients; returns what was sent and accepted."""
    posted = Posted(started=time.monotonic())
    slots = asyncio.Semaphore(concurrency)
    targets = itertools.cycle(clients)
    pending: set[asyncio.Task[None]] = set()

    async def send(client: httpx.AsyncClient, batch: list[dict[str, Any]], firing: int) -> None:
        try:
            response = await client.post("/v1/batch", json={"batch": batch})
            rejected = response.json().get("rejected", []) if response.status_code == 200 else batch
            if rejected:
                posted.failures += len(rejected)
                posted.last_error = f"{response.status_code} {response.text[:200]}"
            else:  # a reminder is expected only for visitors whose every event was accepted
                posted.firing += firing
            posted.events_accepted += len(batch) - len(rejected)
        except httpx.HTTPError as exc:
            posted.failures += len(batch)
            posted.last_error = repr(exc)
        finally:
            slots.release()

    while (elapsed := time.monotonic() - posted.started) < seconds:
        now = datetime.now(UTC)
        while posted.events_sent < rate * elapsed:  # the events due by now, in batches of whole visitors
            batch: list[dict[str, Any]] = []
            firing = 0
            while len(batch) < MAX_BATCH and posted.events_sent + len(batch) < rate * elapsed:
                batch += visitor_events(run, posted.visitors, fire_share, now)
                firing += fires(posted.visitors, fire_share)
                posted.visitors += 1
            await slots.acquire()  # all slots busy: ingest is slower than the rate, and it shows
            posted.events_sent += len(batch)
            task = asyncio.create_task(send(next(targets), batch, firing))
            pending.add(task)
            task.add_done_callback(pending.discard)
        on_tick(posted)
        await asyncio.sleep(TICK_S)
    await asyncio.gather(*pending)
    posted.ended = time.monotonic()
    return posted
