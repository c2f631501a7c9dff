"""Each sender's share of every rate limit: the fraction of the outbound partitions it owns.

The outbound topic is keyed by recipient address (`topics.recipient_key`), so every domain's,
every workspace's and the whole traffic spreads evenly over the partitions; a process that owns
k of P partitions carries ~k/P of each and enforces k/P of each limit (rate and burst). After a
rebalance the shares of the group sum to 1, so the provider sees the configured rate, with no
coordination service: Kafka tells every member its partitions (assignment.py).

Why not a shared budget in PostgreSQL: docs/operations.md, "Scaling out" (measured there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from retarget.sender.policy import Rate


@dataclass(frozen=True)
class LimitShare:
    owned: int  # outbound partitions this process owns
    total: int  # partitions of the outbound topic

    @property
    def fraction(self) -> float:
        """owned/total, but never below one partition's worth.

        A process that owns nothing (mid-rebalance, before it joins, or more processes than
        partitions) still sends the deferred messages it leases from the shared retry queue, so
        it keeps the rate of one partition rather than none: the group may then exceed the limit
        by 1/total per such process — none once it is settled with no more processes than
        partitions.
        """
        if self.total <= 0:
            return 1.0
        return max(self.owned, 1) / self.total


def scaled(rate: Rate, fraction: float) -> Rate:
    """`rate` cut to `fraction`: both the rate and the burst, the burst at least 1 (else nothing
    could ever be sent). Summed over the group: the configured rate, and the configured burst
    plus at most one per process (the floors)."""
    if rate.unlimited or fraction >= 1.0:
        return rate
    return Rate(rate.per_s * fraction, max(1, math.floor(rate.burst * fraction)))
