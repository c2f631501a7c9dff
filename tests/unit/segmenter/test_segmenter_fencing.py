"""FencedChangelog's bookkeeping (fencing.py) on fake transactional producers: who gets a
producer when, one transaction per partition, and the offsets stored with the state. The
fence itself (the broker refusing a stalled worker) is tested on the real broker:
tests/integration/segmenter/test_segmenter_fencing.py."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from retarget.segmenter.fencing import FencedChangelog, PartitionNotOwned, transactional_id


class TxnProducer:
    """A transactional producer's calls, journaled; offsets count up per topic-partition."""

    logs: ClassVar[dict[tuple[str, int], int]] = {}  # the broker: shared by every producer

    def __init__(self, tid: str, journal: list[str]) -> None:
        self.tid, self.journal = tid, journal

    async def start(self) -> None:
        self.journal.append(f"start {self.tid}")

    async def stop(self) -> None:
        self.journal.append(f"stop {self.tid}")

    async def begin_transaction(self) -> None:
        self.journal.append(f"begin {self.tid}")

    async def send(self, topic: str, value: Any, key: bytes, partition: int) -> Any:
        offset = self.logs.get((topic, partition), 0)
        self.logs[(topic, partition)] = offset + 1
        self.journal.append(f"send {self.tid} {topic}")
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(SimpleNamespace(offset=offset))
        return done

    def create_batch(self) -> Any:
        records: list[tuple[bytes, Any]] = []
        return SimpleNamespace(
            records=records,
            append=lambda key, value, timestamp: records.append((key, value)) or True,
            close=lambda: None,
        )

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any:
        """A batch's records as sends; acknowledged with its first record's offset, as aiokafka's."""
        first = self.logs.get((topic, partition), 0)
        for key, value in batch.records:
            await self.send(topic, value, key=key, partition=partition)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(SimpleNamespace(offset=first))
        return done

    async def commit_transaction(self) -> None:
        self.journal.append(f"commit {self.tid}")


def changelog(journal: list[str]) -> FencedChangelog:
    TxnProducer.logs = {}
    return FencedChangelog("app", lambda tid: TxnProducer(tid, journal))


def table(name: str) -> Any:
    return SimpleNamespace(changelog=f"{name}-changelog")


def test_the_transactional_id_names_the_app_and_the_partition():
    assert transactional_id("t.x-segmenter", 7) == "t.x-segmenter-7"


async def test_owning_partitions_starts_their_producers_at_once_and_drops_the_others():
    journal: list[str] = []
    c = changelog(journal)
    await c.own([0, 1])
    # started on assignment, before anything is recorded: the fence comes first
    assert sorted(journal) == ["start app-0", "start app-1"]
    journal.clear()
    await c.own([1, 2])
    assert sorted(journal) == ["start app-2", "stop app-0"]
    journal.clear()
    # partition 0 comes back: a new producer (the old one may have been fenced meanwhile)
    await c.own([0, 1, 2])
    assert journal == ["start app-0"]


async def test_each_partition_is_one_transaction_and_the_offset_stored_is_its_commit_markers():
    journal: list[str] = []
    c = changelog(journal)
    due, profiles = table("due"), table("profiles")
    staged = await c.write(
        {
            0: [(due, [(b"a", b"1")]), (profiles, [(b"a", b"p"), (b"b", b"q")])],
            1: [(profiles, [(b"c", None)])],
        }
    )
    assert [e for e in journal if not e.startswith("send")] == [
        "start app-0", "begin app-0", "start app-1", "begin app-1", "commit app-0", "commit app-1",
    ]  # fmt: skip
    # records of a partition in its own transaction, in the order given
    assert [e for e in journal if e.startswith("send app-0")] == [
        "send app-0 due-changelog", "send app-0 profiles-changelog", "send app-0 profiles-changelog",
    ]  # fmt: skip
    # the last record's offset + 1: the commit marker's (recovery starts after it)
    assert [(t.changelog, p, offset) for t, p, _, offset in staged] == [
        ("due-changelog", 0, 1),
        ("profiles-changelog", 0, 2),
        ("profiles-changelog", 1, 1),
    ]
    assert staged[2][2] == [(b"c", None)]


async def test_a_batch_for_a_partition_given_away_is_refused_and_fences_nobody():
    """A batch handled after faust moved its partition away (the agent's take buffer holds events
    read before the rebalance; faust skips stale events only as it reads them) must not start a
    producer for that partition: InitProducerId would fence the partition's new owner (it exits
    70 at its next commit) and commit this worker's stale state after the owner's recovery.
    Refused before anything is sent, like a fenced batch: record_or_die exits, nothing recorded."""
    journal: list[str] = []
    c = changelog(journal)
    await c.own([0, 1])
    await c.own([0])  # partition 1 moved to another worker
    journal.clear()
    with pytest.raises(PartitionNotOwned, match="partition 1"):
        await c.write({0: [(table("due"), [(b"a", b"1")])], 1: [(table("due"), [(b"b", b"1")])]})
    assert journal == []  # no producer started (no fence of the owner), no transaction begun
    await c.own([0, 1])  # it came back: this worker's own again
    assert await c.write({1: [(table("due"), [(b"b", b"1")])]})
