"""How far the events loop has read, in receipt time: the timer fires no wait beyond it.

A wait is decided by event time (firing.py): every event stamped before its due time is
applied first. An idle worker gets that for free — the events arrive before the wait comes
due — but a worker behind a backlog, or restarting after a crash, has not yet read the
exit (an order, say) that was received before the due time; fired by the wall clock alone,
the wait would go out where the idle worker cancelled it.

So the timer's cut-off is the read watermark: for each owned events partition, `now` when
everything in it has been handled (its next offset has reached the high watermark), else
the receipt time (Kafka's record timestamp, set by ingest) of the last record handled. The
minimum over the partitions is the time up to which every event received has been applied.
Pure bookkeeping; the loop feeds it, the timer reads it.
"""

from __future__ import annotations

from collections.abc import Callable

NEVER = float("-inf")


class ReadWatermark:
    def __init__(self) -> None:
        self._next: dict[int, int] = {}  # partition -> next offset to handle
        self._read_until: dict[int, float] = {}  # partition -> receipt time (s) of the last handled
        self._unknown: set[int] = set()  # assigned, start offset not known yet

    def assigned(self, starts: dict[int, int | None]) -> None:
        """Partitions (re)assigned, with the offset each starts at (None: not known yet)."""
        self._next = {p: offset for p, offset in starts.items() if offset is not None}
        self._read_until = {}
        self._unknown = {p for p, offset in starts.items() if offset is None}

    def handled(self, partition: int, next_offset: int, received_at_ms: int) -> None:
        self._next[partition] = next_offset
        self._unknown.discard(partition)
        self._read_until[partition] = received_at_ms / 1000.0

    def at(self, now: float, highwater: Callable[[int], int | None]) -> float:
        """Receipt time up to which every owned partition's events have been handled."""
        if self._unknown:
            return NEVER  # a partition whose start isn't known yet: nothing is known to be read
        mark = now
        for partition, next_offset in self._next.items():
            high = highwater(partition)
            if high is not None and next_offset >= high:
                continue  # caught up: everything received so far is applied
            mark = min(mark, self._read_until.get(partition, NEVER))
        return mark
