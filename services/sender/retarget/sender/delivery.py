"""One delivery attempt of an owned claim, and the outcome record it produces.

Shared by the outbound handler (first attempt) and the retry loop (later attempts):
DKIM → SMTP → classify the reply → schedule a retry or give up → record in the send log →
the DeliveryRecorded to publish. The outcome record is built from exactly what was stored,
so a later replay of the send-log row publishes a byte-identical record.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Protocol

from retarget.common.clock import Clock
from retarget.common.faults import crash_point
from retarget.common.identity import email_digest
from retarget.common.reputation import sending_domain
from retarget.common.schemas import DeliveryRecorded, OutboundMessage
from retarget.common.topics import profile_key
from retarget.sender.dkim_keys import MissingKey
from retarget.sender.metrics import (
    DOMAIN_OUTCOMES,
    MAILBOX_PROVIDERS,
    OUTCOMES,
    POLICY_REFUSALS,
    domain_label,
)
from retarget.sender.rules import (
    DKIM_KEY_MISSING,
    POLICY_REFUSAL,
    RetryPolicy,
    Verdict,
    classify_reply,
    schedule_retry,
)
from retarget.sender.store import DeliveryStore, Finish, RetryEntry, SendLogRow
from retarget.sender.transport import Envelope, MailTransport, SmtpReply


class Signer(Protocol):
    def sign(self, raw: bytes, selectors: tuple[str, ...], workspace_id: str) -> bytes:
        """`raw` with its DKIM signatures (the workspace's keys); MissingKey when a key is missing."""
        ...


class DomainFeedback(Protocol):
    def slow_down(self, domain: str) -> None:
        """The domain pushed back (throttling, policy refusal): send to it more slowly."""
        ...


class Unsigned:
    def sign(self, raw: bytes, selectors: tuple[str, ...], workspace_id: str) -> bytes:
        return raw


log = logging.getLogger(__name__)


def outcome_record(row: SendLogRow) -> DeliveryRecorded:
    """The outcome a send-log row stands for (used for first publishes and replays alike)."""
    return DeliveryRecorded(
        message_id=row.message_id,
        workspace_id=row.workspace_id,
        profile_id=row.profile_id,
        campaign=row.campaign,
        outcome=row.state,  # type: ignore[arg-type]  # every non-'claimed' state is a DeliveryState
        at=row.updated_at,
        reason=row.last_reason or "",
        smtp_code=row.last_code,
        attempt=row.attempts,
    )


def outcome_key(record: DeliveryRecorded) -> bytes:
    return profile_key(record.workspace_id, record.profile_id)


def count_outcome(record: DeliveryRecorded) -> None:
    OUTCOMES.labels(record.workspace_id, record.campaign, record.outcome, record.reason).inc()


class Deliverer:
    def __init__(
        self,
        store: DeliveryStore,
        transport: MailTransport,
        policy: RetryPolicy,
        clock: Clock,
        signer: Signer | None = None,
        *,
        max_in_flight: int = 10,
        named_domains: frozenset[str] = MAILBOX_PROVIDERS,
        domain_feedback: DomainFeedback | None = None,
    ):
        # Claimed and not yet recorded: what a crash can leave 'claimed' (README). Taken before
        # the claim and released after the outcome is recorded, so it is also the SMTP concurrency.
        self.in_flight = asyncio.Semaphore(max_in_flight)
        self.store = store
        self.transport = transport
        self.policy = policy
        self.clock = clock
        self.signer = signer or Unsigned()
        self.named_domains = named_domains  # recipient domains counted by name (DOMAIN_OUTCOMES)
        self.domain_feedback = domain_feedback  # the rate limiter, which adapts the domain's rate

    async def attempt(
        self,
        message: OutboundMessage,
        payload: bytes,
        claimed: SendLogRow,
        first_deferred_at: datetime | None = None,
        dkim_selectors: tuple[str, ...] = (),
    ) -> DeliveryRecorded:
        try:
            raw = self.signer.sign(message.raw.encode("utf-8"), dkim_selectors, message.workspace_id)
        except MissingKey as exc:
            # A configuration gap an operator can close: defer (retried with backoff), don't send unsigned.
            reply, verdict = SmtpReply(None, str(exc), "connect"), Verdict("deferred", DKIM_KEY_MISSING)
        else:
            reply = await self.transport.deliver(Envelope(message.mail_from, message.recipient, raw))
            if reply.code is not None and 200 <= reply.code < 300:
                crash_point("sender.after_smtp_250")
            verdict = classify_reply(reply)
        now = self.clock.now()
        if verdict.slows_domain and self.domain_feedback is not None:
            self.domain_feedback.slow_down(message.recipient.rpartition("@")[2])
        retry = None
        if verdict.outcome == "deferred":
            first = first_deferred_at or now
            next_at = schedule_retry(self.policy, claimed.attempts, first, now)
            if isinstance(next_at, Verdict):
                verdict = next_at
            else:
                retry = RetryEntry(payload, first, next_at)
        domain = domain_label(message.recipient, self.named_domains)
        DOMAIN_OUTCOMES.labels(domain, verdict.outcome).inc()
        if verdict.reason == POLICY_REFUSAL:
            POLICY_REFUSALS.labels(message.workspace_id, domain).inc()
        return await self.record(claimed, message, verdict, reply.code, reply.message, now, retry)

    async def record(
        self,
        claimed: SendLogRow,
        message: OutboundMessage,
        verdict: Verdict,
        code: int | None,
        reply_text: str,
        at: datetime,
        retry: RetryEntry | None = None,
    ) -> DeliveryRecorded:
        stored = await self.store.finish(
            Finish(
                message_id=claimed.message_id,
                workspace_id=claimed.workspace_id,
                recipient_hash=email_digest(message.recipient),
                state=verdict.outcome,
                reason=verdict.reason,
                code=code,
                # The remote MX writes this: a NUL byte in it (PostgreSQL's text can't hold
                # one) would make the send log refuse the outcome of a message already sent.
                reply_text=reply_text.replace("\x00", "\\x00"),
                at=at,
                suppress=verdict.suppress,
                retry=retry,
                sending_domain=sending_domain(message.mail_from),
            )
        )
        crash_point("sender.after_outcome")
        if not stored:
            # The claim outlived the claim lease and the sweep closed it (failed/unconfirmed)
            # and published that outcome meanwhile. One message, one final outcome: the
            # stored one is replayed, not ours published as a second, different one.
            row = (await self.store.known([claimed.message_id])).get(claimed.message_id)
            if row is not None and row.state != "claimed":
                log.warning(
                    "claim closed by the sweep before its outcome was recorded",
                    extra={"message_id": claimed.message_id, "outcome": verdict.outcome, "code": code},
                )
                return outcome_record(row)
        if verdict.outcome not in ("sent", "suppressed"):
            log.info(
                "delivery not accepted",
                extra={
                    "message_id": claimed.message_id,
                    "outcome": verdict.outcome,
                    "code": code,
                    "reply": reply_text,
                    "attempt": claimed.attempts,
                },
            )
        row = SendLogRow(
            message_id=claimed.message_id,
            workspace_id=claimed.workspace_id,
            campaign=claimed.campaign,
            profile_id=claimed.profile_id,
            state=verdict.outcome,
            attempts=claimed.attempts,
            last_code=code,
            last_reason=verdict.reason,
            updated_at=at,
        )
        record = outcome_record(row)
        count_outcome(record)
        return record
