"""Batched handling: pending writes are read back, written once per key, and only after every
acknowledged send of the batch was acknowledged."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from retarget.segmenter.batching import Batch, BatchOutputs, SendsUnacknowledged, WriteBehind
from retarget.segmenter.erasure import EraseByEmail, EraseProfile, is_erasure_step
from retarget.segmenter.identity import MergeRequested


class CountingTable(dict[bytes, bytes]):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[bytes, bytes | None, Any]] = []
        self.context: Any = None

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.writes.append((key, value, self.context))
        super().__setitem__(key, value)

    def __delitem__(self, key: bytes) -> None:
        self.writes.append((key, None, self.context))
        super().__delitem__(key)


def test_pending_writes_are_read_back_and_written_once_per_key_under_their_own_context():
    table = CountingTable()
    table[b"gone"] = b"old"
    table.writes.clear()
    current = ["event-1"]
    pending = WriteBehind(table, current=lambda: current[0])
    pending[b"a"] = b"1"
    pending[b"a"] = b"2"
    current[0] = "event-2"
    pending[b"b"] = b"x"
    del pending[b"gone"]
    pending[b"brief"] = b"y"
    del pending[b"brief"]  # created and deleted in the same batch: nothing to write
    assert pending.get(b"a") == b"2" and pending.get(b"gone") is None and table[b"gone"] == b"old"

    def enter(context: Any) -> None:
        table.context = context

    assert pending.write(enter) == 4
    assert table.writes == [(b"a", b"2", "event-1"), (b"b", b"x", "event-2"), (b"gone", None, "event-2")]
    assert len(pending) == 0 and pending.get(b"a") == b"2"


async def test_tables_are_written_only_after_every_acknowledgement_of_the_batch():
    table = CountingTable()
    acks: list[asyncio.Future[None]] = []
    sent: list[tuple[str, bytes]] = []

    async def enqueue(output: str, key: bytes, value: bytes, wait: bool, partition: int | None) -> Any:
        sent.append((output, key))
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        acks.append(ack)
        return ack

    outputs = BatchOutputs(enqueue)
    pending = WriteBehind(table)
    batch = Batch([pending], outputs, enter=lambda _: None)
    await outputs("triggers", b"k", b"t1", True)
    await outputs("profile_events", b"k", b"fwd", False)  # not waited for by the rules
    await outputs("triggers", b"k", b"t2", True)
    pending[b"k"] = b"fired"
    assert sent == [("triggers", b"k"), ("profile_events", b"k"), ("triggers", b"k")]  # in order, at once

    commit = asyncio.create_task(batch.commit())
    acks[0].set_result(None)
    await asyncio.sleep(0.01)
    assert table.writes == []  # the second trigger isn't acknowledged yet
    acks[2].set_result(None)
    await asyncio.sleep(0.01)
    assert table.writes == []  # nor the forward: a failed one would be an event lost
    acks[1].set_result(None)
    assert await commit == 1
    assert table == {b"k": b"fired"}


async def test_a_failed_acknowledgement_records_nothing():
    table = CountingTable()

    async def enqueue(output: str, key: bytes, value: bytes, wait: bool, partition: int | None) -> Any:
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ack.set_exception(RuntimeError("broker gone"))
        return ack

    outputs = BatchOutputs(enqueue)
    pending = WriteBehind(table)
    batch = Batch([pending], outputs, enter=lambda _: None)
    await outputs("triggers", b"k", b"t", True)
    pending[b"k"] = b"fired"
    with pytest.raises(SendsUnacknowledged, match="broker gone"):  # the timer retries these
        await batch.commit()
    assert table == {} and pending.get(b"k") is None  # the records replay; the trigger is sent again
    assert await batch.commit() == 0


def test_erasure_steps_are_recognised_without_decoding():
    assert is_erasure_step(msgspec.json.encode(EraseProfile(request_id="r")))
    by_email = EraseByEmail(request_id="r", workspace_id="ws", email_hash="ab", partition=0)
    assert is_erasure_step(msgspec.json.encode(by_email))
    merge = MergeRequested(source="a", into="b", at_message_id="m")
    assert not is_erasure_step(msgspec.json.encode(merge))


async def test_a_refused_forward_records_nothing_either():
    """A forward is sent without waiting, but a batch is recorded only once it was acknowledged."""
    table = CountingTable()

    async def enqueue(output: str, key: bytes, value: bytes, wait: bool, partition: int | None) -> Any:
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ack.set_exception(RuntimeError("profile-events refused"))
        return ack

    outputs = BatchOutputs(enqueue)
    pending = WriteBehind(table)
    batch = Batch([pending], outputs, enter=lambda _: None)
    await outputs("profile_events", b"k", b"fwd", False)
    pending[b"k"] = b"forwarded"
    with pytest.raises(SendsUnacknowledged, match="profile-events refused"):
        await batch.commit()
    assert table == {}
