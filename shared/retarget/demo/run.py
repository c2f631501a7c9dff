"""The demo run: stack → workspace → services → traffic → email in the capture, then say where to look.

This is the thin version: one visitor adds to cart and leaves; the abandoned-cart wait is
shortened to a few seconds. Realistic traffic and the funnel table come with the demo issue.
"""

from __future__ import annotations

import asyncio
import email
import time
import uuid
from email.policy import default as default_policy
from pathlib import Path

import httpx

from retarget.demo.services import PLAN, start_all
from retarget.demo.workspace import ensure_demo_workspace
from retarget.devstack.env import database_url
from retarget.devstack.paths import devstack_dir
from retarget.devstack.services import stop_service

CART_WAIT_S = 5


async def run_demo() -> int:
    print("==> demo workspace and write key")
    creds = await ensure_demo_workspace(database_url())
    env = {
        "RETARGET_LINK_SECRET": creds.link_secret,
        "RETARGET_CART_WAIT_S": str(CART_WAIT_S),
        "RETARGET_PUBLIC_URL": "http://127.0.0.1:18080",
    }
    print("==> starting the four services (logs in .devstack/logs/)")
    await asyncio.to_thread(start_all, env)

    recipient = f"demo-{uuid.uuid4().hex[:6]}@customer.example"
    visitor = f"anon-{uuid.uuid4().hex[:8]}"
    print(f"==> a visitor identifies as {recipient}, adds a product to the cart and leaves")
    async with httpx.AsyncClient(
        base_url="http://127.0.0.1:18080", auth=(creds.write_key, ""), timeout=10
    ) as c:
        for path, body in [
            ("/v1/identify", {"anonymousId": visitor, "traits": {"email": recipient, "firstName": "Robin"}}),
            (
                "/v1/track",
                {
                    "anonymousId": visitor,
                    "event": "Product Added",
                    "properties": {
                        "product_id": "tent-2p",
                        "name": "Two-Person Tent",
                        "price": 249.0,
                        "currency": "USD",
                        "url": "https://shop.example/tent-2p",
                    },
                },
            ),
        ]:
            response = await c.post(path, json=body)
            response.raise_for_status()

    print(f"==> waiting for the abandoned-cart email ({CART_WAIT_S} s wait, then render and delivery)")
    found = await asyncio.to_thread(_wait_for_mail, devstack_dir() / "mail", recipient, 90)
    if found is None:
        print("no email arrived within 90 s: read .devstack/logs/*.log, and `retarget devstack status`")
        return 1
    html_path = devstack_dir() / "demo" / "email.html"
    html_path.parent.mkdir(parents=True, exist_ok=True)
    msg = email.message_from_bytes(found.read_bytes(), policy=default_policy)
    html_part = msg.get_body(("html",))
    html_path.write_text(html_part.get_content() if html_part is not None else "")
    print()
    print(f"Delivered: {msg['Subject']!r} to {recipient}")
    print(f"  the message as received:  {found}")
    print(f"  its HTML, for a browser:  {html_path}")
    print(f"  every captured message:   {found.parent}/")
    print(
        f"  demo write key:           {creds.write_key}   (HTTP Basic user for http://127.0.0.1:18080/v1/*)"
    )
    print("  addresses of everything:  retarget devstack status --json")
    print("The stack and services keep running; `make demo-stop` stops the services, `make down` everything.")
    return 0


def stop_demo() -> int:
    for plan in reversed(PLAN):
        print(stop_service(plan.name))
    return 0


def _wait_for_mail(folder: Path, recipient: str, timeout_s: float) -> Path | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for path in sorted(folder.glob("*.eml"), reverse=True):
            if recipient.encode() in path.read_bytes():
                return path
        time.sleep(0.5)
    return None
