"""The demo's mail client writes a List-Unsubscribe mailto: URL into the mail it sends."""

from __future__ import annotations

from retarget.demo.engage import mailto_message
from retarget.ingest.mail_reading import token_from


def test_the_mailto_url_becomes_the_mail_the_mailbox_understands():
    token = "eyJraW5kIjoidW5zdWJzY3JpYmUifQ.q1w2-e3_r4"
    message = mailto_message(
        f"mailto:unsubscribe@shop.example?subject=unsubscribe%20{token}", "ann@example.com"
    )
    assert message["To"] == "unsubscribe@shop.example" and message["From"] == "ann@example.com"
    assert message["Subject"] == f"unsubscribe {token}"
    assert token_from(message.as_bytes()) == token


async def test_the_demos_people_open_after_the_pre_fetch_window_so_they_count_as_people():
    import time

    import httpx

    from retarget.demo.engage import READ_AFTER_S, Received, engage
    from retarget.ingest.open_signals import PREFETCH_WINDOW_S

    opened_at: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        opened_at.append(time.time())
        return httpx.Response(200)

    sent_at = time.time() - READ_AFTER_S + 0.5  # arrived a moment ago
    mail = Received("ann@example.com", "http://ingest/t/o/x.gif", [], None, sent_at=sent_at)
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        for seed in range(20):  # some seed opens it (55% do)
            await engage(client, [mail], {}, seed=seed)
            if opened_at:
                break
    assert READ_AFTER_S > PREFETCH_WINDOW_S and opened_at[0] - sent_at >= READ_AFTER_S


async def test_cart_abandoners_buy_at_the_base_rate_emailed_or_not():
    """The control group must buy too, or the demo's lift would be every order's."""
    import json

    import httpx

    from retarget.demo.engage import base_rate_purchases
    from retarget.demo.traffic import Visitor

    ordered: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert body["event"] == "Order Completed" and body["properties"]["revenue"] > 0
        ordered.append(body["anonymousId"])
        return httpx.Response(200)

    abandoners = [Visitor(f"anon-{i}", "cart_abandoner", f"v{i}@example.com") for i in range(1000)]
    async with httpx.AsyncClient(base_url="http://ingest", transport=httpx.MockTransport(answer)) as client:
        bought = await base_rate_purchases(client, abandoners, rate=0.06)
    assert bought.purchased == len(ordered) and len(set(ordered)) == len(ordered)
    assert 30 <= len(ordered) <= 95  # 6% of 1,000 is 60; a seeded draw, far inside ±4 standard errors
    assert bought.revenue > 0


async def test_the_demos_fetches_are_classified_as_ingest_will_see_them():
    """Some pixels are fetched by Apple's privacy proxy (machine), some opens come through Gmail's
    image proxy (a person): the demo's funnel shows both columns with real numbers."""
    import time

    import httpx

    from retarget.demo.engage import READ_AFTER_S, Received, engage
    from retarget.ingest.open_signals import classify_fetch

    agents: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        agents.append(request.headers["User-Agent"])
        return httpx.Response(200)

    sent_at = time.time() - READ_AFTER_S - 1
    mails = [
        Received(f"p{i}@example.com", f"http://ingest/t/o/{i}.gif", [], None, sent_at=sent_at)
        for i in range(200)
    ]
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        result = await engage(client, mails, {}, seed=3)
    signals = [classify_fetch(a, seconds_since_issue=READ_AFTER_S + 1) for a in agents]
    machine = [s for s in signals if s.machine]
    assert len(machine) == result.machine_opened > 0 and {s.source for s in machine} == {"apple_mpp"}
    human = [s for s in signals if not s.machine]
    assert len(human) == result.opened and {s.source for s in human} == {"gmail_proxy", "client"}
