"""What recipients do with the demo's emails: open some, click fewer, unsubscribe a few, and
buy after a click — through the same tracking links a real mail client would follow.
"""

from __future__ import annotations

import asyncio
import email
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import httpx

from retarget.demo.traffic import Visitor, order, product

BROWSER_UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko)"
_LINK = re.compile(r'(?:href|src)="([^"]+/t/[oc]/[^"]+)"')


@dataclass
class Engagement:
    opened: int = 0
    clicked: int = 0
    unsubscribed: int = 0
    purchased: int = 0
    revenue: float = 0.0


@dataclass(frozen=True)
class Received:
    recipient: str
    open_pixel: str | None
    clicks: list[str]
    unsubscribe: str | None


def read_mailbox(folder: Path, recipients: set[str]) -> list[Received]:
    """The captured messages addressed to `recipients`, with their tracking links."""
    found = []
    for path in sorted(folder.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=default_policy)
        assert isinstance(msg, EmailMessage)
        to = msg["To"].addresses[0].addr_spec if msg["To"] else ""
        if to not in recipients:
            continue
        html_part = msg.get_body(("html",))
        html = html_part.get_content() if html_part is not None else ""
        links = _LINK.findall(html)
        header = str(msg.get("List-Unsubscribe", ""))
        https = next((u.strip("<> ") for u in header.split(",") if "http" in u), None)
        found.append(
            Received(
                recipient=to,
                open_pixel=next((u for u in links if "/t/o/" in u), None),
                clicks=[u for u in links if "/t/c/" in u],
                unsubscribe=https,
            )
        )
    return found


async def engage(
    client: httpx.AsyncClient,
    mails: list[Received],
    people: dict[str, Visitor],
    *,
    seed: int = 11,
    on_progress: Callable[[int], None] = lambda n: None,
) -> Engagement:
    rng = random.Random(seed)
    result = Engagement()
    semaphore = asyncio.Semaphore(8)

    async def one(mail: Received) -> None:
        async with semaphore:
            roll = rng.random()
            if mail.open_pixel and roll < 0.55:
                await client.get(mail.open_pixel, headers={"User-Agent": BROWSER_UA})
                result.opened += 1
                if mail.clicks and roll < 0.28:
                    response = await client.get(rng.choice(mail.clicks), headers={"User-Agent": BROWSER_UA})
                    result.clicked += response.status_code in (302, 303, 307)
                    visitor = people.get(mail.recipient)
                    if visitor is not None and roll < 0.14:
                        await _purchase(client, visitor, rng, result)
            elif mail.unsubscribe and roll > 0.97:
                response = await client.post(mail.unsubscribe, data={"List-Unsubscribe": "One-Click"})
                result.unsubscribed += response.status_code < 300
            on_progress(1)

    await asyncio.gather(*(one(m) for m in mails))
    return result


async def _purchase(
    client: httpx.AsyncClient, visitor: Visitor, rng: random.Random, result: Engagement
) -> None:
    from retarget.demo.traffic import CATALOG

    items = [product(*rng.choice(CATALOG))]
    properties = order(rng, items)
    response = await client.post(
        "/v1/track",
        json={"anonymousId": visitor.anonymous_id, "event": "Order Completed", "properties": properties},
    )
    if response.status_code == 200:
        result.purchased += 1
        result.revenue += properties["revenue"]
