"""Policy refusals and throttling through the real handler over fakes: what is suppressed,
what is counted, and how the domain's rate reacts."""

from __future__ import annotations

from prometheus_client import REGISTRY

from retarget.common.identity import email_digest
from retarget.sender.adaptive_rate import AdaptiveRates, AdaptSettings
from retarget.sender.policy import Rate
from retarget.sender.ratelimit import RateLimiter
from retarget.sender.testing import decode_delivery, fake_sender, outbound, record_of
from retarget.sender.transport import SmtpReply

UNLIMITED = Rate(0, 0)


def adaptive_sender():  # type: ignore[no-untyped-def]
    limiter = RateLimiter(
        domain_default=Rate(100, 100),
        domain_overrides={},
        workspace_default=UNLIMITED,
        global_rate=UNLIMITED,
        adaptive=AdaptiveRates(AdaptSettings(factor=0.5)),
    )
    return fake_sender(limiter=limiter)


def refusals(workspace: str) -> float:
    value = REGISTRY.get_sample_value(
        "retarget_sender_policy_refusals_total", {"workspace": workspace, "domain": "gmail.com"}
    )
    return value or 0.0


async def test_a_policy_refusal_fails_the_message_without_suppressing_and_slows_the_domain() -> None:
    parts = adaptive_sender()
    message = outbound(workspace_id="ws-policy", recipient="blocked-one@gmail.com")
    parts.transport.script(
        message.recipient, SmtpReply(550, "5.7.26 Unauthenticated email is not accepted due to DMARC", "done")
    )
    before = refusals("ws-policy")
    [out] = await parts.handler([record_of(message)])
    delivery = decode_delivery(out.value)
    assert (delivery.outcome, delivery.reason) == ("failed", "policy_refusal")
    assert ("ws-policy", email_digest(message.recipient)) not in parts.store.suppressed
    assert refusals("ws-policy") == before + 1
    assert parts.limiter.domain_rate("gmail.com") == Rate(50, 50)
    assert parts.limiter.domain_rate("yahoo.com") == Rate(100, 100)


async def test_throttling_defers_and_slows_the_domain() -> None:
    parts = adaptive_sender()
    message = outbound(recipient="someone@example.org")
    parts.transport.script(message.recipient, SmtpReply(421, "4.7.0 [TSS04] temporarily deferred", "rcpt"))
    [out] = await parts.handler([record_of(message)])
    assert (decode_delivery(out.value).outcome, decode_delivery(out.value).reason) == (
        "deferred",
        "throttled",
    )
    assert parts.limiter.domain_rate("example.org").per_s == 50
    assert parts.store.retries  # retried later


async def test_a_soft_bounce_leaves_the_rate_alone() -> None:
    parts = adaptive_sender()
    message = outbound(recipient="full@example.net")
    parts.transport.script(
        message.recipient, SmtpReply(452, "4.2.2 The recipient's inbox is out of storage", "rcpt")
    )
    [out] = await parts.handler([record_of(message)])
    assert decode_delivery(out.value).reason == "soft_bounce"
    assert parts.limiter.domain_rate("example.net").per_s == 100
