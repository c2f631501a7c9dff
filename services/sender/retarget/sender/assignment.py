"""Follows which outbound partitions this sender owns and sets its share of the limits.

Kafka calls the listener on every rebalance, on every member: before (revoked) and after
(assigned). aiokafka's protocol is eager — a member gives up all its partitions before the new
assignment — so between the two calls a process owns nothing and runs at the floor share
(one partition's worth, limit_share.py): the group stays under the limit while partitions move.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from retarget.sender.limit_share import LimitShare
from retarget.sender.metrics import ASSIGNED_PARTITIONS, LIMIT_SHARE

log = logging.getLogger(__name__)


class ShareListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Recomputes the share from the assignment and hands it to `apply` (the rate limiter)."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        topic: str,
        apply: Callable[[float], None],
        *,
        partitions_guess: int,
    ) -> None:
        self.consumer = consumer
        self.topic = topic
        self.apply = apply
        self.partitions: list[int] = []  # owned, sorted
        # until the topic's metadata is known (before the first assignment): the configured count
        self.share = LimitShare(0, partitions_guess)
        self._publish()

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        gone = {tp.partition for tp in revoked if tp.topic == self.topic}
        self._update([p for p in self.partitions if p not in gone])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._update(sorted(tp.partition for tp in assigned if tp.topic == self.topic))

    def _update(self, owned: list[int]) -> None:
        total = len(self.consumer.partitions_for_topic(self.topic) or ()) or self.share.total
        self.partitions = owned
        self.share = LimitShare(len(owned), total)
        self._publish()
        log.info(
            "limit share",
            extra={"partitions": owned, "total": total, "share": round(self.share.fraction, 4)},
        )

    def _publish(self) -> None:
        self.apply(self.share.fraction)
        ASSIGNED_PARTITIONS.set(self.share.owned)
        LIMIT_SHARE.set(self.share.fraction)

    def describe(self) -> dict[str, object]:
        """For /readyz: who owns what, at a glance across replicas."""
        return {
            "outbound_partitions": self.partitions,
            "outbound_partitions_total": self.share.total,
            "limit_share": round(self.share.fraction, 4),
        }
