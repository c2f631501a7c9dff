"""What recipients do with the demo's emails: open some, click fewer, unsubscribe a few (by the
one-click link, or by mail to the List-Unsubscribe mailto: address), and buy after a click —
through the same links a real mail client would follow. A buyer whose email offered a coupon
code uses it: the shop's backend redeems it (a secret key with scope `coupons`) and the
Order Completed names it.
"""

from __future__ import annotations

import asyncio
import email
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import httpx

from retarget.demo.traffic import Visitor, order, product

BROWSER_UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko)"
# Gmail's image proxy fetches the pixel when a person opens the mail: a human open
GMAIL_PROXY_UA = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
# Apple Mail Privacy Protection fetches every image on delivery, opened or not: a machine open
APPLE_MPP_UA = "Mozilla/5.0"
APPLE_MAIL_SHARE = 0.2  # of recipients; their pixel is fetched whether they read or not
GMAIL_SHARE = 0.3  # of the people who open, those reading through Gmail
# People read a mail a little after it arrives; ingest takes a fetch within 10 s of the email's
# issue for a link scanner's pre-fetch (docs/deliverability.md), so the demo's people wait that out.
READ_AFTER_S = 12.0
_LINK = re.compile(r'(?:href|src)="([^"]+/t/[oc]/[^"]+)"')
_COUPON = re.compile(r"with code <strong>([A-Za-z0-9._-]+)</strong>")  # the bundled templates' wording
Redeem = Callable[[str, str], Awaitable[bool]]
"""(code, order_id) -> redeemed: the shop's backend redeeming a code at checkout."""


@dataclass
class Engagement:
    opened: int = 0
    clicked: int = 0
    unsubscribed: int = 0
    unsubscribed_by_mail: int = 0
    purchased: int = 0
    revenue: float = 0.0
    redeemed: int = 0  # purchases that used the email's coupon code
    machine_opened: int = 0  # Apple Mail Privacy Protection's fetches on delivery


@dataclass(frozen=True)
class Received:
    recipient: str
    open_pixel: str | None
    clicks: list[str]
    unsubscribe: str | None
    unsubscribe_mailto: str | None = None
    subject: str = ""
    sent_at: float = 0.0  # unix seconds, from the Date header (when the composer wrote it)
    coupon: str | None = None  # the code the email offers, if any


def mailto_message(mailto: str, sender: str) -> EmailMessage:
    """The mail a client writes for a List-Unsubscribe mailto: URL (RFC 6068)."""
    parts = urlsplit(mailto)
    query = parse_qs(parts.query)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = unquote(parts.path)
    message["Subject"] = query.get("subject", ["unsubscribe"])[0]
    message.set_content(query.get("body", [""])[0])
    return message


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
        mailto = next((u.strip("<> \r\n\t") for u in header.split(",") if "mailto:" in u), None)
        found.append(
            Received(
                recipient=to,
                open_pixel=next((u for u in links if "/t/o/" in u), None),
                clicks=[u for u in links if "/t/c/" in u],
                unsubscribe=https,
                unsubscribe_mailto=mailto,
                subject=str(msg.get("Subject", "")),
                sent_at=msg["Date"].datetime.timestamp() if msg["Date"] else 0.0,
                coupon=match.group(1) if (match := _COUPON.search(html)) else None,
            )
        )
    return found


async def engage(
    client: httpx.AsyncClient,
    mails: list[Received],
    people: dict[str, Visitor],
    *,
    seed: int = 11,
    mailbox_port: int | None = None,
    redeem: Redeem | None = None,
    on_progress: Callable[[int], None] = lambda n: None,
) -> Engagement:
    rng = random.Random(seed)
    result = Engagement()
    semaphore = asyncio.Semaphore(8)

    async def one(mail: Received) -> None:
        await asyncio.sleep(max(0.0, mail.sent_at + READ_AFTER_S - time.time()))
        async with semaphore:
            roll, apple, gmail = rng.random(), rng.random(), rng.random()
            if mail.open_pixel and apple < APPLE_MAIL_SHARE:
                await client.get(mail.open_pixel, headers={"User-Agent": APPLE_MPP_UA})
                result.machine_opened += 1
            if mail.open_pixel and roll < 0.55:
                agent = GMAIL_PROXY_UA if gmail < GMAIL_SHARE else BROWSER_UA
                await client.get(mail.open_pixel, headers={"User-Agent": agent})
                result.opened += 1
                if mail.clicks and roll < 0.28:
                    response = await client.get(rng.choice(mail.clicks), headers={"User-Agent": BROWSER_UA})
                    result.clicked += response.status_code in (302, 303, 307)
                    visitor = people.get(mail.recipient)
                    if visitor is not None and roll < 0.14:
                        await _purchase(client, visitor, rng, result, mail.coupon, redeem)
            elif mail.unsubscribe_mailto and mailbox_port and roll > 0.985:
                # the mailbox stands where unsubscribe@<sender domain> is routed in production
                message = mailto_message(mail.unsubscribe_mailto, mail.recipient)
                await aiosmtplib.send(message, hostname="127.0.0.1", port=mailbox_port, timeout=10)
                result.unsubscribed += 1
                result.unsubscribed_by_mail += 1
            elif mail.unsubscribe and roll > 0.97:
                response = await client.post(mail.unsubscribe, data={"List-Unsubscribe": "One-Click"})
                result.unsubscribed += response.status_code < 300
            on_progress(1)

    await asyncio.gather(*(one(m) for m in mails))
    return result


async def base_rate_purchases(
    client: httpx.AsyncClient, abandoners: list[Visitor], *, rate: float, seed: int = 13
) -> Engagement:
    """Some cart abandoners buy later whatever their inbox holds (held out or emailed): the base
    rate a holdout measures. Those who click an email buy on top of it (engage), the effect."""
    rng = random.Random(seed)
    result = Engagement()
    for visitor in abandoners:
        if rng.random() < rate:
            await _purchase(client, visitor, rng, result)
    return result


async def _purchase(
    client: httpx.AsyncClient,
    visitor: Visitor,
    rng: random.Random,
    result: Engagement,
    coupon: str | None = None,
    redeem: Redeem | None = None,
) -> None:
    from retarget.demo.traffic import CATALOG

    items = [product(*rng.choice(CATALOG))]
    properties = order(rng, items)
    # the shop's checkout takes the email's code: its backend redeems it, the order names it
    # (Segment's `coupon` property)
    if coupon and redeem is not None and await redeem(coupon, str(properties["order_id"])):
        properties["coupon"] = coupon
        result.redeemed += 1
    response = await client.post(
        "/v1/track",
        json={"anonymousId": visitor.anonymous_id, "event": "Order Completed", "properties": properties},
    )
    if response.status_code == 200:
        result.purchased += 1
        result.revenue += properties["revenue"]
