"""Admission for a whole batch: the look-ups batched, the decisions pure and in order.

Three queries per batch whatever its size — suppressions of every recipient (workspace or
global), the recent admitted messages of every recipient (for the caps), and the policies of
workspaces not cached — then `admission.decide` per message in the batch's order, with a
tally so the batch's own earlier admissions count against the caps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from retarget.common.clock import Clock
from retarget.common.identity import email_digest
from retarget.common.schemas import OutboundMessage
from retarget.sender.admission import PAUSED, CapTally, Decision, Postpone, decide
from retarget.sender.policies import PolicyCache
from retarget.sender.policy import SendingPolicy
from retarget.sender.store import DeliveryStore, RecipientKey, SuppressionKey


def suppression_key(message: OutboundMessage) -> RecipientKey:
    """What the suppression look-up asks: this recipient, in this workspace, for this campaign."""
    return (message.workspace_id, email_digest(message.recipient), message.campaign)


def cap_key(message: OutboundMessage) -> SuppressionKey:
    return (message.workspace_id, email_digest(message.recipient))


@dataclass(frozen=True)
class Admitted:
    decision: Decision  # None: send now
    policy: SendingPolicy


class Hold(Protocol):
    """The reputation guard (reputation_guard.py): which messages a pause holds, and how long."""

    async def held(self, messages: Sequence[OutboundMessage]) -> set[str]: ...

    def until(self, now: datetime) -> datetime: ...


class BatchAdmission:
    def __init__(
        self, store: DeliveryStore, policies: PolicyCache, clock: Clock, hold: Hold | None = None
    ) -> None:
        self.store = store
        self.policies = policies
        self.clock = clock
        self.hold = hold

    async def decide(self, messages: Sequence[OutboundMessage]) -> list[Admitted]:
        if not messages:
            return []
        keys = list({cap_key(m) for m in messages})
        policies = await self.policies.get_many([m.workspace_id for m in messages])
        suppressed = await self.store.suppressions(list({suppression_key(m) for m in messages}))
        now = self.clock.now()
        longest = max((rule.window_s for p in policies.values() for rule in p.caps), default=0.0)
        history = await self.store.cap_history(keys, now - timedelta(seconds=longest)) if longest else {}
        held = await self.hold.held(messages) if self.hold is not None else set()
        tally = CapTally()
        results = []
        for message in messages:
            key, policy = cap_key(message), policies[message.workspace_id]
            decision = decide(
                suppression_reason=suppressed.get(suppression_key(message)),
                policy=policy,
                campaign=message.campaign,
                history=history.get(key, []) + tally.of(key),
                recipient_timezone=message.recipient_timezone,
                now=now,
                consent=message.recipient_consent,
            )
            if decision is None or isinstance(decision, Postpone):
                tally.add(key, message.campaign, now)
                if self.hold is not None and message.message_id in held:  # a pause: kept, not refused
                    decision = Postpone(self.hold.until(now), PAUSED)
            results.append(Admitted(decision, policy))
        return results
