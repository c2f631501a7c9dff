"""What the sender keeps in PostgreSQL, as one small interface with plain data types.

The send log row is the idempotency guard: its primary key is the message id, and its
state machine is

    (none) ──claim──► claimed ──finish──► sent | bounced | failed | expired
       │                 │   └──finish──► deferred ──reclaim (retry loop)──► claimed …
       └──suppressed─────┼──────────────► suppressed
                         └──lease runs out (process died)──► failed / unconfirmed_claim

A claim that a partition's new owner meets is marked handed_off; the retry loop publishes the
outcome of such a row once it is final, so a claimant that dies between recording and
publishing loses no outcome (migration 017).

Only the caller that *created* a 'claimed' state may talk SMTP for that message. The real
adapter is pg_store.PostgresDeliveryStore; unit tests use an in-memory fake.

A store works for one deployment (its topic prefix, migration 018): its claims and retry rows
name it, and lease_due, retry_backlog, sweep_stale_claims and publish_handed_off see only rows
of that deployment or of none (written before the migration). The fake has one deployment.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from retarget.sender.rules import UNCONFIRMED_CLAIM

SuppressionKey = tuple[str, bytes]
"""(workspace id, email digest)."""

RecipientKey = tuple[str, bytes, str]
"""(workspace id, email digest, campaign): what a suppression look-up asks about."""


@dataclass(frozen=True)
class SendLogRow:
    message_id: str
    workspace_id: str
    campaign: str
    profile_id: str
    state: str
    attempts: int
    last_code: int | None
    last_reason: str | None
    updated_at: datetime


@dataclass(frozen=True)
class RetryEntry:
    payload: bytes  # the outbound record's value, decoded again when due
    first_deferred_at: datetime
    not_before: datetime


@dataclass(frozen=True)
class NewClaim:
    message_id: str
    workspace_id: str
    campaign: str
    profile_id: str
    recipient_hash: bytes
    state: str  # 'claimed' to deliver now; 'suppressed'/'capped' to record a refusal; 'deferred' to postpone
    reason: str | None
    at: datetime
    retry: RetryEntry | None = None  # set exactly when state == 'deferred' (quiet hours)


@dataclass(frozen=True)
class Claim:
    owned: bool  # True: this caller moved the row to 'claimed' and alone may deliver
    row: SendLogRow


@dataclass(frozen=True)
class Finish:
    message_id: str
    workspace_id: str
    recipient_hash: bytes
    state: str
    reason: str
    code: int | None
    reply_text: str
    at: datetime
    suppress: bool = False  # insert a hard_bounce suppression for (workspace, recipient)
    retry: RetryEntry | None = None  # set exactly when state == 'deferred'
    sending_domain: str = ""  # the envelope sender's domain: the reputation counts' domain


PublishRows = Callable[[list["SendLogRow"]], Awaitable[None]]


def unconfirmed(row: SendLogRow, at: datetime) -> SendLogRow:
    """A stale claim closed by the sweep: nobody knows whether the relay got it (README)."""
    return replace(row, state="failed", last_reason=UNCONFIRMED_CLAIM, updated_at=at)


@dataclass(frozen=True)
class DueRetry:
    message_id: str
    payload: bytes
    first_deferred_at: datetime


class DeliveryStore(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def suppressions(self, keys: Sequence[RecipientKey]) -> dict[RecipientKey, str]:
        """Suppression reason per key that is suppressed — in its workspace or globally ('*'), or
        unsubscribed from that campaign only (reason 'campaign_unsubscribed'). One query."""
        ...

    async def known(self, message_ids: Sequence[str]) -> dict[str, SendLogRow]:
        """The send-log rows of those message ids that have one. One query."""
        ...

    async def cap_history(
        self, keys: Sequence[SuppressionKey], since: datetime
    ) -> dict[SuppressionKey, list[tuple[str, datetime]]]:
        """(campaign, created_at) of each recipient's sent, claimed or deferred messages since `since`. One query."""
        ...

    async def claim(self, claim: NewClaim) -> Claim:
        """Insert the send-log row unless the message id exists; return who owns it and the row."""
        ...

    async def reclaim_deferred(self, message_id: str, at: datetime) -> Claim | None:
        """Move a 'deferred' row back to 'claimed' (attempts + 1); None when there is no row."""
        ...

    async def finish(self, finish: Finish) -> bool:
        """Record the outcome of an owned claim, with its suppression or retry entry, atomically.
        False when the row was no longer claimed (the sweep closed it meanwhile): nothing changed."""
        ...

    async def lease_due(self, now: datetime, lease_until: datetime, limit: int) -> list[DueRetry]:
        """Take up to `limit` retries due at `now`, hidden from other workers until `lease_until`."""
        ...

    async def drop_retry(self, message_id: str) -> None: ...

    async def postpone(self, message_id: str, not_before: datetime) -> None:
        """Move a leased retry to `not_before` without an attempt (quiet hours started meanwhile)."""
        ...

    async def retry_backlog(self) -> tuple[int, datetime | None]:
        """How many retries wait, and the first deferral of the oldest."""
        ...

    async def sweep_stale_claims(
        self, claimed_before: datetime, at: datetime, publish: PublishRows | None = None
    ) -> list[SendLogRow]:
        """Close claims older than the lease as failed/unconfirmed; return them. `publish` gets
        the closed rows before they are stored (and their retries dropped); if it raises, or the
        process dies, nothing changes and the next sweep finds them again."""
        ...

    async def hand_off(self, message_ids: Sequence[str]) -> None:
        """Mark claims this process met but did not make (a rebalance moved their partition while
        another process held them): their outcomes are then published by publish_handed_off."""
        ...

    async def publish_handed_off(self, limit: int, publish: PublishRows) -> list[SendLogRow]:
        """Give `publish` the handed-off rows whose outcome is final, then unmark them; as the
        sweep, a crash or a raise in between changes nothing and the next call finds them again."""
        ...

    async def check(self) -> str | None:
        """A problem reaching the database, or None (for /readyz)."""
        ...
