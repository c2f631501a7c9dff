"""The demo's buyers use the coupon their email offered: the code is read from the bundled
template's wording, the shop's backend redeems it for the order, and the Order Completed
names it (Segment's `coupon` property)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import httpx

from retarget.common.schemas import CartLine, Recipient, TriggerFired
from retarget.common.testing import FakeClock
from retarget.common.workspaces import Workspace
from retarget.composer.compose import Composer
from retarget.composer.render import CampaignTemplates
from retarget.demo.engage import Received, engage, read_mailbox
from retarget.demo.traffic import Visitor


def test_the_code_of_a_bundled_abandoned_cart_email_is_read(tmp_path: Path) -> None:
    composer = Composer(
        CampaignTemplates.from_folder(None),
        FakeClock(),
        link_secret=b"s",
        public_url="http://127.0.0.1:18080",
        link_ttl=timedelta(days=1),
    )
    trigger = TriggerFired(
        trigger_id="t1",
        workspace_id="demo",
        profile_id="p",
        campaign="abandoned_cart",
        template="abandoned_cart",
        reason="r",
        entry_message_id="m",
        due_at=FakeClock().now(),
        fired_at=FakeClock().now(),
        recipient=Recipient(email="ann@example.com"),
        cart=[CartLine(product_id="p1", name="Boots", price=80)],
        incentive={"kind": "percent_off", "value": 15},
    )
    shop = Workspace("demo", "Shop", "Shop", "shop@shop.example", "1 Street")
    (tmp_path / "1.eml").write_text(composer.compose(trigger, shop, "RT-DEMO00001").outbound.raw)
    [mail] = read_mailbox(tmp_path, {"ann@example.com"})
    assert mail.coupon == "RT-DEMO00001"


async def test_a_buyer_redeems_the_emails_code_and_the_order_names_it() -> None:
    orders: list[dict[str, object]] = []
    redeemed: list[tuple[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/track":
            orders.append(json.loads(request.content)["properties"])
        return httpx.Response(302 if "/t/c/" in request.url.path else 200)

    async def redeem(code: str, order_id: str) -> bool:
        redeemed.append((code, order_id))
        return True

    mail = Received("ann@example.com", "http://i/t/o/x.gif", ["http://i/t/c/y"], None, coupon="RT-DEMO00001")
    people = {"ann@example.com": Visitor("anon-1", "cart", "ann@example.com")}
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://i") as client:
        for seed in range(200):  # some seed opens, clicks and buys (14% do)
            result = await engage(client, [mail], people, seed=seed, redeem=redeem)
            if result.purchased:
                break
    assert result.purchased == 1 and result.redeemed == 1
    assert redeemed == [("RT-DEMO00001", orders[0]["order_id"])]
    assert orders[0]["coupon"] == "RT-DEMO00001"
