"""The timer's in-memory view of the durable `due` table: a heap of (due time, key).

The table is the truth (it survives crashes and moves with its partitions); the heap only
saves the timer from scanning every due entry on every tick. The agent pushes whenever it
writes `due`; after a rebalance or recovery the heap is rebuilt from the table (the
partitions this worker now owns). Entries are never removed in place: a popped entry is
checked against the table, so a stale one (the wait was restarted or cancelled) is just
dropped. A taken entry is re-armed `resend_after_s` later: if the batch that handles it
can't be recorded (a send refused), the table still says the same due time and the entry
comes due again; once handled, the re-armed entry is stale and dropped.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable

DueLookup = Callable[[bytes], bytes | None]


class DueSchedule:
    def __init__(self, *, resend_after_s: float = 30.0, compact_factor: int = 3) -> None:
        self._heap: list[tuple[float, bytes, bytes]] = []  # (fire at, key, due value it was for)
        self._resend_after_s = resend_after_s
        self._compact_factor = compact_factor
        self._size_after_rebuild = 0
        self.dirty = True  # rebuild before the next use (start, rebalance)

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, key: bytes, due_at: float, value: bytes) -> None:
        heapq.heappush(self._heap, (due_at, key, value))

    def rebuild(self, entries: Iterable[tuple[bytes, bytes]], to_epoch: Callable[[bytes], float]) -> None:
        heap = [(to_epoch(value), key, value) for key, value in entries if value]
        heapq.heapify(heap)
        self._heap = heap
        self._size_after_rebuild = len(heap)
        self.dirty = False

    def needs_compaction(self) -> bool:
        """Stale entries pile up when waits restart often; rebuild once they dominate."""
        return len(self._heap) > self._compact_factor * self._size_after_rebuild + 10_000

    def take_due(
        self, now: float, lookup: DueLookup, limit: int = 10_000, *, until: float | None = None
    ) -> list[bytes]:
        """Keys due by `until` (default `now`; the timer passes the read watermark) and still
        current in the table; each is re-armed for a resend after `now`."""
        keys: list[bytes] = []
        heap = self._heap
        cutoff = now if until is None else min(now, until)
        while heap and heap[0][0] <= cutoff and len(keys) < limit:
            _, key, value = heapq.heappop(heap)
            if lookup(key) != value:
                continue  # restarted, cancelled or fired since this entry was pushed
            keys.append(key)
            heapq.heappush(heap, (now + self._resend_after_s, key, value))
        return keys

    def next_at(self) -> float | None:
        return self._heap[0][0] if self._heap else None
