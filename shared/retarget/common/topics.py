"""Topic names and record keys: the one place that says what goes where.

Keys decide ordering and ownership: one visitor's events share a partition, so they stay in
order; outbound messages are keyed by a digest of the recipient's address, so one recipient's
mail stays in order on one partition while every domain — gmail.com too — spreads over all of
them (the senders split each limit by the partitions they own: docs/operations.md, "Scaling out").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from retarget.common.identity import email_digest


@dataclass(frozen=True)
class Topics:
    prefix: str = "retarget"

    @property
    def events(self) -> str:
        return f"{self.prefix}.events.v1"

    @property
    def triggers(self) -> str:
        return f"{self.prefix}.triggers.v1"

    @property
    def outbound(self) -> str:
        return f"{self.prefix}.outbound.v1"

    @property
    def deliveries(self) -> str:
        return f"{self.prefix}.deliveries.v1"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}.dead-letter.v1"

    @property
    def config(self) -> str:
        """The change feed of workspace configuration (retarget.config, docs/management.md)."""
        return f"{self.prefix}.config.v1"

    def all(self) -> list[str]:
        """Topics this system creates itself (the segmenter's internal ones are faust's)."""
        return [self.events, self.triggers, self.outbound, self.deliveries, self.dead_letter, self.config]


@dataclass(frozen=True)
class TopicLayout:
    partitions: int | None = None  # None: whatever the creator asks (RETARGET_TOPIC_PARTITIONS)
    configs: Mapping[str, str] = field(default_factory=dict)


def topic_layout(topic: str) -> TopicLayout:
    """A topic's shape where what it is fixes it, whatever the creator asks.

    The config feed is compacted (the newest record per object stays forever) and has one
    partition, so a reader sees every change in the order PostgreSQL's versions were published.
    """
    if topic.endswith(".config.v1"):
        return TopicLayout(partitions=1, configs={"cleanup.policy": "compact"})
    return TopicLayout()


def visitor_key(workspace_id: str, user_id: str | None, anonymous_id: str | None) -> bytes:
    """Key of the events topic: workspace + (anonymousId or userId).

    anonymousId wins when both are present: a visitor's events before and after login
    then share a partition and stay in order; the segmenter merges the identities.
    """
    visitor = anonymous_id or user_id
    if not visitor:
        raise ValueError("an event needs a userId or an anonymousId")
    return f"{workspace_id}:{visitor}".encode()


def profile_key(workspace_id: str, profile_id: str) -> bytes:
    return f"{workspace_id}:{profile_id}".encode()


def recipient_key(email: str) -> bytes:
    """Key of the outbound topic: hex sha256 of the normalised recipient address.

    The same digest the send log and the suppressions store (`email_digest`), so a key shown in
    a log or a dead letter reveals no more than those tables. One address → one partition: a
    recipient's messages stay in order, and two of them are never checked against the
    frequency caps by two senders at once. The domain is not in it: gmail.com spreads over
    every partition instead of loading one.
    """
    if not email.rpartition("@")[2]:
        raise ValueError("recipient has no domain")
    return email_digest(email).hex().encode()


def domain_key(email: str) -> bytes:
    """The outbound key before recipient_key: the recipient's domain, lower-cased.

    No longer produced; kept for the tests of the upgrade (records of this key still on the
    topic are sent once: the send log dedupes by message id, whatever the partition).
    """
    _, _, domain = email.rpartition("@")
    if not domain:
        raise ValueError("recipient has no domain")
    return domain.lower().encode()
