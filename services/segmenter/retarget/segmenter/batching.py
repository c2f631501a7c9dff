"""Records are handled in batches: each touched table key is written once per batch, after every
acknowledged send of the batch was acknowledged.

Why: every faust table write is one changelog record queued in faust's producer buffer, and
an acknowledged send awaited inside the agent costs a broker round trip. A shop's visitor
sends several events in a row, and a burst of due triggers comes as a burst of ticks; a
batch turns those into one write per key and one round trip for all its acknowledgements.

The guarantee is unchanged: a table write that records a send (a trigger fired, a merge
sent) reaches the real table only after Kafka acknowledged the send, so a crash repeats
the batch's records (same ids, deduplicated downstream) and never loses one. Until the
batch is written its state lives in `WriteBehind` overlays, which the agent (and the
timer's look-ups) read first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from retarget.segmenter.tables import Table

#: produce a record (output, key, value, wait, partition) and return what to await for its
#: acknowledgement (None: nothing to wait for)
Enqueue = Callable[[str, bytes, bytes, bool, int | None], Awaitable[Awaitable[Any] | None]]

_DELETED = None


class SendsUnacknowledged(Exception):
    """The batch's sends were not all acknowledged: nothing of it was recorded (a retry is safe)."""


class WriteBehind:
    """A table seen through the batch's pending writes: reads see them, `write` applies them.

    `context` is whatever must be current while the real table is written for a key (faust
    picks the store partition and the changelog partition from the current event), captured
    by `current()` at the time of the batch's write.
    """

    def __init__(self, table: Table, current: Callable[[], Any] = lambda: None) -> None:
        self.table, self._current = table, current
        self._pending: dict[bytes, tuple[bytes | None, Any]] = {}

    def get(self, key: bytes) -> bytes | None:
        hit = self._pending.get(key)
        if hit is not None:
            return hit[0]
        return self.table.get(key)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._pending[key] = (value, self._current())

    def __delitem__(self, key: bytes) -> None:
        self._pending[key] = (_DELETED, self._current())

    def __len__(self) -> int:
        return len(self._pending)

    def pending_items(self) -> list[tuple[bytes, bytes]]:
        """The pending writes, a deletion as b"" (for rebuilding the timer's heap)."""
        return [(key, value or b"") for key, (value, _) in self._pending.items()]

    def write(self, enter: Callable[[Any], None]) -> int:
        """Apply the pending writes to the real table (no await: atomic for the event loop)."""
        written = 0
        for key, value, context in self.drain():
            enter(context)
            if value is not _DELETED:
                self.table[key] = value
            elif self.table.get(key) is not None:  # created and deleted in the same batch
                del self.table[key]
            written += 1
        return written

    def drain(self) -> list[tuple[bytes, bytes | None, Any]]:
        """The pending writes as (key, value or None for a deletion, context), now forgotten:
        for a writer that applies them itself (events_loop.py writes them in batches)."""
        pending, self._pending = self._pending, {}
        return [(key, value, context) for key, (value, context) in pending.items()]

    def discard(self) -> None:
        self._pending.clear()


class BatchOutputs:
    """A `Send` whose acknowledged sends are awaited together, by `settle`, not one at a time.

    Records go to the producer at once and in order (a merge record still precedes the
    event forwarded after it); only the waiting for acknowledgements is deferred.
    """

    def __init__(self, enqueue: Enqueue) -> None:
        self._enqueue = enqueue
        self._acks: list[Awaitable[Any]] = []

    async def __call__(
        self, output: str, key: bytes, value: bytes, wait: bool, partition: int | None = None
    ) -> None:
        ack = await self._enqueue(output, key, value, wait, partition)
        # every send, `wait` or not, is acknowledged before the batch is recorded: a forward or a
        # dead letter that failed would otherwise be an event lost (a producer's flush raises none)
        if ack is not None:
            self._acks.append(ack)

    async def settle(self) -> None:
        acks, self._acks = self._acks, []
        if acks:
            await asyncio.gather(*acks)

    def discard(self) -> None:
        self._acks.clear()


class Batch:
    """The overlays and outputs of one batch. `commit` records them: with `record` (production:
    recording.py's order, changelog before local state), else it settles the sends, then writes
    the tables in place (faust's own write path: agent tests on the memory store)."""

    def __init__(
        self,
        tables: Iterable[WriteBehind],
        outputs: BatchOutputs,
        enter: Callable[[Any], None],
        record: Callable[[], Awaitable[None]] | None = None,
    ):
        self.tables, self.outputs, self._enter, self._record = list(tables), outputs, enter, record

    async def commit(self) -> int:
        if self._record is not None:
            pending = sum(len(table) for table in self.tables)
            await self._record()
            return pending
        try:
            await self.outputs.settle()
        except BaseException as exc:
            self.discard()  # nothing recorded: the batch's records replay
            raise SendsUnacknowledged(str(exc)) from exc
        return sum(table.write(self._enter) for table in self.tables)

    def discard(self) -> None:
        self.outputs.discard()
        for table in self.tables:
            table.discard()
