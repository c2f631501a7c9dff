"""Caps, quiet hours, rate limits and shutdown through the real handler and retry loop (fakes)."""

from __future__ import annotations

import asyncio
import itertools
import time as wall
from datetime import time

import pytest

from retarget.common.identity import email_digest
from retarget.common.stage import Output
from retarget.sender.policy import QuietHours, Rate, SendingPolicy, parse_caps
from retarget.sender.ratelimit import RateLimiter, Stopping, TokenBucket
from retarget.sender.testing import UNLIMITED, SenderParts, decode_delivery, fake_sender, outbound, record_of
from retarget.sender.transport import Envelope, SmtpReply


def _outcomes(outputs: list[Output]) -> list[tuple[str, str, int]]:
    return [(d.outcome, d.reason, d.attempt) for d in map(decode_delivery, (o.value for o in outputs))]


def test_a_bucket_gives_its_burst_then_one_token_per_interval() -> None:
    bucket = TokenBucket(Rate(10, 2), now=0.0)
    assert [bucket.reserve(0.0) for _ in range(4)] == [0.0, 0.0, pytest.approx(0.1), pytest.approx(0.2)]
    assert bucket.reserve(1.0) == 0.0  # refilled meanwhile, never above the burst
    assert not bucket.full(1.0) and bucket.full(2.0)


async def test_an_empty_bucket_makes_the_message_wait_not_drop() -> None:
    limiter = RateLimiter(
        domain_default=Rate(20, 1), domain_overrides={}, workspace_default=UNLIMITED, global_rate=UNLIMITED
    )
    stop = asyncio.Event()
    started = wall.perf_counter()
    waits = [await limiter.acquire("example.com", "ws1", None, stop) for _ in range(3)]
    assert waits[0] == 0 and waits[1] == pytest.approx(0.05, abs=0.01)
    assert wall.perf_counter() - started >= 0.09
    assert await limiter.acquire("other.example", "ws1", None, stop) == 0  # its own bucket


async def test_a_workspace_or_global_bucket_limits_across_domains() -> None:
    # a clock that stands still: on a loaded machine a real one refilled the 1 ms token between
    # the two calls and the second one did not wait (the test measured the machine's speed)
    frozen = lambda: 100.0  # noqa: E731
    limiter = RateLimiter(
        domain_default=UNLIMITED,
        domain_overrides={},
        workspace_default=UNLIMITED,
        global_rate=Rate(1000, 1),
        monotonic=frozen,
    )
    stop = asyncio.Event()
    await limiter.acquire("a.example", "ws1", None, stop)
    assert await limiter.acquire("b.example", "ws2", None, stop) > 0
    per_workspace = RateLimiter(
        domain_default=UNLIMITED,
        domain_overrides={},
        workspace_default=UNLIMITED,
        global_rate=UNLIMITED,
        monotonic=frozen,
    )
    await per_workspace.acquire("a.example", "ws1", Rate(1000, 1), stop)
    assert await per_workspace.acquire("b.example", "ws1", Rate(1000, 1), stop) > 0
    assert await per_workspace.acquire("b.example", "ws2", Rate(1000, 1), stop) == 0


async def test_a_wait_gives_up_when_the_process_stops() -> None:
    limiter = RateLimiter(
        domain_default=Rate(0.1, 1), domain_overrides={}, workspace_default=UNLIMITED, global_rate=UNLIMITED
    )
    stop = asyncio.Event()
    await limiter.acquire("example.com", "ws1", None, stop)
    waiting = asyncio.create_task(limiter.acquire("example.com", "ws1", None, stop))
    await asyncio.sleep(0.01)
    stop.set()
    with pytest.raises(Stopping):
        await asyncio.wait_for(waiting, 1)


async def test_a_capped_message_is_recorded_and_not_sent() -> None:
    parts = fake_sender(sending=SendingPolicy("*", caps=parse_caps("1/16h,3/7d")))
    first, second = (
        outbound(recipient="a@example.com"),
        outbound(recipient="a@example.com", campaign="browse"),
    )
    await parts.handler([record_of(first)])
    parts.clock.advance(hours=2)
    outputs = await parts.handler([record_of(second)])
    assert _outcomes(outputs) == [("capped", "recipient_cap", 0)]
    assert parts.store.rows[second.message_id].state == "capped"
    assert [e.recipient for e in parts.transport.attempts] == ["a@example.com"]
    parts.clock.advance(hours=15)
    third = outbound(recipient="a@example.com")
    assert _outcomes(await parts.handler([record_of(third)])) == [("sent", "accepted", 1)]


async def test_two_messages_to_one_recipient_in_one_batch_respect_the_cap() -> None:
    parts = fake_sender(sending=SendingPolicy("*", caps=parse_caps("1/16h")))
    a, b = outbound(recipient="a@example.com"), outbound(recipient="A@example.com")
    outputs = await parts.handler([record_of(a), record_of(b)])
    assert sorted(_outcomes(outputs)) == [("capped", "recipient_cap", 0), ("sent", "accepted", 1)]
    assert len(parts.transport.attempts) == 1


async def test_quiet_hours_defer_to_their_end_and_the_retry_loop_sends_then() -> None:
    parts = fake_sender(sending=SendingPolicy("*", quiet_hours=QuietHours(time(11), time(13))))
    message = outbound(recipient_timezone="Europe/Paris")  # 13:00 in Paris at 12:00 UTC: allowed
    assert _outcomes(await parts.handler([record_of(message)])) == [("sent", "accepted", 1)]
    quiet = outbound(recipient_timezone="UTC")
    assert _outcomes(await parts.handler([record_of(quiet)])) == [("deferred", "quiet_hours", 0)]
    assert parts.store.retries[quiet.message_id].not_before == parts.clock.now().replace(hour=13)
    parts.clock.advance(minutes=59)
    assert await parts.retry.tick() == 0
    parts.clock.advance(minutes=1)
    assert await parts.retry.tick() == 1
    [sent] = [decode_delivery(r.value) for r in parts.publisher.sent]
    assert (sent.outcome, sent.attempt) == ("sent", 1)  # the postponement used no attempt


async def test_a_retry_due_inside_quiet_hours_is_postponed_without_an_attempt() -> None:
    parts = fake_sender(sending=SendingPolicy("*", quiet_hours=QuietHours(time(12, 30), time(14))))
    message = outbound(recipient_timezone="UTC")
    parts.transport.script(message.recipient, SmtpReply(451, "later", "rcpt"))
    await parts.handler([record_of(message)])
    parts.clock.advance(minutes=31)  # the retry is due at 12:01 ... now 12:31, quiet
    assert await parts.retry.tick() == 0
    assert parts.store.retries[message.message_id].not_before == parts.clock.now().replace(hour=14, minute=0)
    assert parts.store.rows[message.message_id].attempts == 1 and len(parts.transport.attempts) == 1


class _UnsubscribeWhileWaiting(RateLimiter):
    """A limiter whose wait lasts long enough for the recipient to unsubscribe meanwhile."""

    def __init__(self, parts_ref: list[SenderParts], recipient: str) -> None:
        super().__init__(
            domain_default=UNLIMITED, domain_overrides={}, workspace_default=UNLIMITED, global_rate=UNLIMITED
        )
        self.parts_ref, self.recipient = parts_ref, recipient

    async def acquire(
        self, domain: str, workspace_id: str, workspace_rate: Rate | None, stop: asyncio.Event
    ) -> float:
        self.parts_ref[0].store.suppressed[("ws1", email_digest(self.recipient))] = "unsubscribed"
        return 5.0


async def test_an_unsubscribe_during_a_token_wait_stops_the_send() -> None:
    ref: list[SenderParts] = []
    parts = fake_sender(limiter=_UnsubscribeWhileWaiting(ref, "late@example.com"))
    ref.append(parts)
    message = outbound(recipient="late@example.com")
    assert _outcomes(await parts.handler([record_of(message)])) == [("suppressed", "unsubscribed", 0)]
    assert parts.transport.attempts == []


async def test_on_stop_waiting_messages_give_up_and_the_batch_is_not_committed() -> None:
    limiter = RateLimiter(
        domain_default=Rate(0.01, 1), domain_overrides={}, workspace_default=UNLIMITED, global_rate=UNLIMITED
    )
    parts = fake_sender(limiter=limiter)
    first, waiting = outbound(recipient="a@example.com"), outbound(recipient="b@example.com")
    task = asyncio.create_task(parts.handler([record_of(first), record_of(waiting)]))
    await asyncio.sleep(0.02)
    parts.handler.stop.set()
    with pytest.raises(Stopping):
        await asyncio.wait_for(task, 1)
    assert parts.store.rows[first.message_id].state == "sent"  # in flight: finished and recorded
    assert waiting.message_id not in parts.store.rows  # never claimed: the replay sends it


async def test_a_missing_dkim_key_defers_instead_of_sending_unsigned() -> None:
    from retarget.sender.dkim_keys import DkimKeys

    parts = fake_sender(sending=SendingPolicy("*", dkim_selectors=("s1",)), signer=DkimKeys(None))
    message = outbound()
    assert _outcomes(await parts.handler([record_of(message)])) == [("deferred", "dkim_key_missing", 1)]
    assert parts.transport.attempts == [] and message.message_id in parts.store.retries


async def test_every_outcome_goes_through_the_signer() -> None:
    class Marking:
        def sign(self, raw: bytes, selectors: tuple[str, ...], workspace_id: str) -> bytes:
            return b"X-Signed: " + ",".join((workspace_id, *selectors)).encode() + b"\r\n" + raw

    parts = fake_sender(sending=SendingPolicy("*", dkim_selectors=("a", "b")), signer=Marking())
    await parts.handler([record_of(outbound())])
    [envelope] = parts.transport.delivered
    assert isinstance(envelope, Envelope) and envelope.raw.startswith(b"X-Signed: ws1,a,b\r\n")


async def test_a_campaign_only_unsubscribe_stops_that_campaign_and_no_other(parts: SenderParts) -> None:
    survey, cart = outbound(recipient="a@example.com", campaign="survey"), outbound(recipient="a@example.com")
    parts.store.campaign_unsubscribes.add(("ws1", email_digest("a@example.com"), "survey"))
    outputs = await parts.handler([record_of(survey), record_of(cart)])
    assert sorted(_outcomes(outputs)) == [("sent", "accepted", 1), ("suppressed", "campaign_unsubscribed", 0)]
    assert [e.recipient for e in parts.transport.attempts] == ["a@example.com"]


async def test_the_domain_table_stays_bounded_over_many_domains_and_keeps_the_busy_ones() -> None:
    ticks = itertools.count()
    limiter = RateLimiter(
        domain_default=Rate(1, 1),
        domain_overrides={},
        workspace_default=UNLIMITED,
        global_rate=UNLIMITED,
        monotonic=lambda: float(next(ticks)),  # a second a reading: a domain seen once refills
        max_buckets=100,
    )
    stop = asyncio.Event()
    assert await limiter.acquire("busy.example", "ws1", None, stop) == 0  # its burst, now empty
    for n in range(5_000):  # a long tail of domains, each seen once
        await limiter.acquire(f"d{n}.example", "ws1", None, stop)
        if n % 50 == 0:  # the busy domain keeps being used: never the least recently used
            limiter._bucket(limiter._domains, "busy.example", Rate(1, 1))
    assert len(limiter._domains) <= 100
    assert "busy.example" in limiter._domains and limiter._domains["busy.example"].level < 1
    assert "d0.example" not in limiter._domains  # the idle ones went, oldest first


async def test_a_domain_spray_does_not_evict_a_busy_domain_into_a_fresh_burst() -> None:
    # The busy domain owes tokens (messages wait on its reservations); a spray of other domains
    # pushes it out of the LRU. Made afresh it would be full: a second burst on top of the
    # waiters, as often as the spray repeats — the domain's limit bypassed.
    now = [0.0]
    limiter = RateLimiter(
        domain_default=Rate(1, 1),
        domain_overrides={},
        workspace_default=UNLIMITED,
        global_rate=UNLIMITED,
        monotonic=lambda: now[0],
        max_buckets=10,
    )
    busy = limiter._bucket(limiter._domains, "busy.example", Rate(1, 1))
    assert busy is not None
    delays = [busy.reserve(now[0]) for _ in range(5)]  # its burst, then four waiters
    assert delays == [0.0, 1.0, 2.0, 3.0, 4.0]
    for n in range(50):  # the spray, while the waiters still wait
        now[0] += 0.01
        limiter._bucket(limiter._domains, f"d{n}.example", Rate(1, 1))
    again = limiter._bucket(limiter._domains, "busy.example", Rate(1, 1))
    assert again is not None
    assert again.reserve(now[0]) > 4.0  # behind the waiters, not a fresh burst
    now[0] += 100  # refilled: the table shrinks back to its bound
    for n in range(50):
        limiter._bucket(limiter._domains, f"e{n}.example", Rate(1, 1))
    assert len(limiter._domains) <= 10


def test_the_domain_table_stays_bounded_when_the_tail_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(
        domain_default=Rate(1, 1),
        domain_overrides={},
        workspace_default=UNLIMITED,
        global_rate=UNLIMITED,
        monotonic=lambda: now[0],
        max_buckets=100,
    )
    for n in range(5_000):  # each domain seen once, one message a second: each is full again
        now[0] += 1.0
        bucket = limiter._bucket(limiter._domains, f"d{n}.example", Rate(1, 1))
        assert bucket is not None
        bucket.reserve(now[0])
    assert len(limiter._domains) <= 100


class _CountingLimiter(RateLimiter):
    def __init__(self) -> None:
        super().__init__(
            domain_default=UNLIMITED, domain_overrides={}, workspace_default=UNLIMITED, global_rate=UNLIMITED
        )
        self.domains: list[str] = []

    async def acquire(
        self, domain: str, workspace_id: str, workspace_rate: Rate | None, stop: asyncio.Event
    ) -> float:
        self.domains.append(domain)
        return 0.0


async def test_a_retry_takes_a_rate_limit_token_like_a_first_attempt() -> None:
    limiter = _CountingLimiter()
    parts = fake_sender(limiter=limiter)
    message = outbound(recipient="a@slow.example")
    parts.transport.script(message.recipient, SmtpReply(451, "later", "rcpt"))
    await parts.handler([record_of(message)])
    parts.clock.advance(minutes=2)
    await parts.retry.tick()
    assert len(parts.transport.attempts) == 2
    assert limiter.domains == ["slow.example", "slow.example"]  # the retry waited for its token too


class _StoppingLimiter(_CountingLimiter):
    async def acquire(
        self, domain: str, workspace_id: str, workspace_rate: Rate | None, stop: asyncio.Event
    ) -> float:
        raise Stopping


async def test_a_retry_stopped_before_its_start_is_handed_back_at_once_not_after_the_lease() -> None:
    parts = fake_sender(claim_lease_s=600)
    message = outbound()
    parts.transport.script(message.recipient, SmtpReply(451, "later", "rcpt"))
    await parts.handler([record_of(message)])
    parts.clock.advance(minutes=2)
    parts.retry.limiter = _StoppingLimiter()  # the process stops while the retry waits for a token
    await parts.retry.tick()
    assert len(parts.transport.attempts) == 1
    parts.retry.limiter = _CountingLimiter()  # restarted: the retry is due at once
    await parts.retry.tick()
    assert len(parts.transport.attempts) == 2


def test_a_workspace_whose_rate_changes_gets_a_bucket_of_its_new_rate() -> None:
    limiter = RateLimiter(
        domain_default=UNLIMITED,
        domain_overrides={},
        workspace_default=Rate(100, 100),
        global_rate=UNLIMITED,
        monotonic=lambda: 0.0,
    )
    old = limiter._bucket(limiter._workspaces, "ws1", Rate(100, 100))
    new = limiter._bucket(limiter._workspaces, "ws1", Rate(1, 1))  # tightened by its owner
    assert old is not None and new is not None and new.rate == Rate(1, 1)
    assert new.reserve(0.0) == 0.0 and new.reserve(0.0) == 1.0  # the new limit holds at once
