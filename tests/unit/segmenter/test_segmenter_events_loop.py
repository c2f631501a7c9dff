"""The events loop and the timer's ticks record a batch in order — sends acknowledged, then the
changelog (due, then profiles, then the input position) committed in a transaction per
partition, then one RocksDB write per table partition with its changelog offset — on faust's
real RocksDB store, with the real rules; only Kafka is a fake (a journal of sends,
acknowledgements and commits)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import rocksdict
from aiokafka.errors import MessageSizeTooLargeError, ProducerFenced
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import TopicPartition
from faust.types import TP
from prometheus_client import REGISTRY

from retarget.common.schemas import DeadLettered, TriggerFired, decoder, encode
from retarget.common.testing import FakeClock
from retarget.segmenter.batching import BatchOutputs, SendsUnacknowledged, WriteBehind
from retarget.segmenter.campaigns import load_campaigns
from retarget.segmenter.dead_letters import MAX_DEAD_LETTER_BYTES
from retarget.segmenter.events_loop import EventsLoop, LoopParts
from retarget.segmenter.fencing import FencedChangelog
from retarget.segmenter.metrics import BatchCounts
from retarget.segmenter.processor import MAX_KEY_BYTES, ProfileProcessor
from retarget.segmenter.recording import PartitionTable, Recorder, position_key
from retarget.segmenter.schedule import DueSchedule
from retarget.segmenter.settings import DEFAULT_CAMPAIGNS_DIR
from retarget.segmenter.state import profile_decoder
from retarget.segmenter.testing import identify, rocksdb_tables, track
from retarget.segmenter.wiring import Worker

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
CAMPAIGNS = load_campaigns(DEFAULT_CAMPAIGNS_DIR, waits={"abandoned_cart": "2s"})
EVENTS, OWNER = "t.events.v1", "t.profile-events.v1"
TP2 = TopicPartition(EVENTS, 2)
ANN = b"ws:anon-1"


class FakeProducer:
    """Sends acknowledged a loop turn later, each one journaled; `fail_topic`: refused there.
    Transactions are journaled too; `fenced`: a later owner started this transactional id."""

    def __init__(self, journal: list[str]) -> None:
        self.journal, self.sent, self.pending = journal, [], []
        self.batches: list[tuple[str, int]] = []  # (topic, records) of each batch sent
        self.fail_topic: str | None = None
        self.fenced = False

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def begin_transaction(self) -> None:
        self.journal.append("begin")

    async def commit_transaction(self) -> None:
        await asyncio.gather(*self.pending, return_exceptions=True)
        if self.fenced:
            raise ProducerFenced()
        self.journal.append("commit")

    max_request_size = 1_048_576  # aiokafka's default: a larger record is refused at send

    async def send(self, topic: str, value: bytes | None, key: bytes, partition: int | None = None) -> Any:
        if len(value or b"") + len(key or b"") > self.max_request_size:
            raise MessageSizeTooLargeError(f"{topic}: record too large")
        self.sent.append((topic, key, value, partition))
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()
        offset = len(self.sent) - 1

        def answer() -> None:
            if topic == self.fail_topic:
                done.set_exception(RuntimeError(f"{topic} refused"))
                return
            self.journal.append(f"acked {topic}")
            done.set_result(SimpleNamespace(offset=offset))

        loop.call_soon(answer)
        self.pending.append(done)
        return done

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        """A closed batch as one acknowledgement (the offset of its first record), as aiokafka's."""
        assert batch.closed, "an open batch would linger"
        first = len(self.sent)
        self.sent += [(topic, key, value, partition) for key, value in batch.records]
        self.batches.append((topic, len(batch.records)))
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()

        def answer() -> None:
            if topic == self.fail_topic:
                done.set_exception(RuntimeError(f"{topic} refused"))
                return
            self.journal.append(f"acked {topic}")
            done.set_result(SimpleNamespace(offset=first))

        loop.call_soon(answer)
        self.pending.append(done)
        return done

    def changelog(self, table: str) -> list[tuple[bytes, bytes | None, int | None]]:
        return [(k, v, p) for topic, k, v, p in self.sent if topic == f"t-{table}-changelog"]


class FakeBatch:
    """aiokafka's BatchBuilder as the recorder uses it: full after `capacity` records."""

    capacity = 3  # small, so a batch of the tests' size is split

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes | None]] = []
        self.closed = False

    def append(self, *, key: bytes, value: bytes | None, timestamp: float | None) -> object | None:
        if self.closed or len(self.records) == self.capacity:
            self.closed = True
            return None
        self.records.append((key, value))
        return object()

    def close(self) -> None:
        self.closed = True


class FakeConsumer:
    def __init__(self) -> None:
        self.starts: dict[TopicPartition, int | str] = {}
        self._assignment: set[TopicPartition] = set()

    def assign(self, partitions: list[TopicPartition]) -> None:
        self._assignment = set(partitions)

    def assignment(self) -> set[TopicPartition]:
        return self._assignment

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.starts[tp] = offset

    async def seek_to_beginning(self, tp: TopicPartition) -> None:  # a coroutine in aiokafka
        self.starts[tp] = "beginning"

    async def position(self, tp: TopicPartition) -> int:
        start = self.starts.get(tp, 0)
        return start if isinstance(start, int) else 0

    def highwater(self, tp: TopicPartition) -> int | None:
        return None


@dataclass
class Rig:
    loop: EventsLoop
    producer: FakeProducer
    journal: list[str]
    profiles: PartitionTable
    due: PartitionTable
    positions: PartitionTable
    clock: FakeClock
    owned: set[int]

    async def poll(self, *events: Any, key: bytes = ANN, first_offset: int = 40) -> None:
        await self.poll_keyed([(key, e) for e in events], first_offset=first_offset)

    async def poll_keyed(self, keyed: list[tuple[bytes, Any]], first_offset: int = 40) -> None:
        records = [
            SimpleNamespace(key=key, value=encode(e), offset=first_offset + i, timestamp=0)
            for i, (key, e) in enumerate(keyed)
        ]
        await self.loop._handle_locked({TP2: records})

    def changelog_offset(self, table: PartitionTable, partition: int = 2) -> int | None:
        offset: int | None = table.table.data.persisted_offset(TP(table.changelog, partition))
        return offset


async def make_rig(datadir: Path, journal: list[str] | None = None) -> Rig:
    journal = journal if journal is not None else []
    producer = FakeProducer(journal)
    profiles, due, positions = (
        PartitionTable(t) for t in rocksdb_tables(str(datadir), "profiles", "due", "positions")
    )
    for table in (profiles, due, positions):
        write = table.write_batch
        name = table.changelog.removeprefix("t-").removesuffix("-changelog")

        def journaled(partition: int, writes: Any, offset: int, write: Any = write, name: str = name) -> None:
            journal.append(f"write {name}")
            write(partition, writes, offset)

        table.write_batch = journaled  # type: ignore[method-assign]
    profiles_view = WriteBehind(profiles, current=profiles.current_partition)
    due_view = WriteBehind(due, current=due.current_partition)

    async def produce(output: str, key: bytes, value: bytes, wait: bool, partition: int | None) -> Any:
        return await producer.send(output, value, key=key, partition=partition)

    outputs = BatchOutputs(produce)
    clock = FakeClock(T0)
    counts = BatchCounts()  # the processor's counters, applied by the recorder (as wired in the worker)
    processor = ProfileProcessor(
        profiles=profiles_view, due=due_view, send=outputs, campaigns=CAMPAIGNS, clock=clock,
        schedule=DueSchedule(), counts=counts,
    )  # fmt: skip
    changelog = FencedChangelog("t", lambda transactional_id: producer)
    recorder = Recorder([(due_view, due), (profiles_view, profiles)], outputs, changelog, positions, counts)
    owned = {2}
    app = SimpleNamespace(
        rebalancing=False,
        in_recovery=False,
        assignor=SimpleNamespace(assigned_actives=lambda: {TP(OWNER, p) for p in owned}),
    )

    async def dead_letter(*args: Any) -> None:
        journal.append("dead letter")
        # the worker's own dead-letter path (it reads nothing of the worker but its clock)
        await Worker.send_dead_letter(SimpleNamespace(clock=clock), outputs, *args)  # type: ignore[arg-type]

    # every key the rig polls lives in partition 2, the one it owns (a test may say otherwise)
    parts = LoopParts(app, processor, recorder, positions, asyncio.Lock(), dead_letter, lambda key: 2)
    loop = EventsLoop(
        parts, bootstrap="127.0.0.1:1", events_topic=EVENTS, owner_topic=OWNER, batch_size=100, within_s=0.05
    )
    await loop.consumer.stop()  # never started: the fake below stands in for it
    loop.consumer = FakeConsumer()  # type: ignore[assignment]
    assert await loop._follow_assignment()
    return Rig(loop, producer, journal, profiles, due, positions, clock, owned)


def cart(mid: str = "m2") -> Any:
    return track("Product Added", T0, mid=mid, product_id="p1", name="Boots", price=80)


async def test_a_poll_is_recorded_sends_then_changelog_then_one_state_write_per_table_partition(tmp_path):
    rig = await make_rig(tmp_path)
    bo = b"ws:anon-2"
    await rig.poll_keyed([
        (ANN, identify(T0, mid="m1", email="ann@example.com")),
        (ANN, cart()),
        (bo, track("Product Viewed", T0, mid="m3", anonymous_id="anon-2", product_id="p2", name="Hat", price=20)),
        (bo, identify(T0, mid="m4", anonymous_id="anon-2", user_id="u-9", email="bo@example.com")),  # a merge
    ])  # fmt: skip
    j = rig.journal
    writes = [entry for entry in j if entry.startswith("write")]
    assert writes == ["write due", "write profiles", "write positions"]  # one RocksDB batch each
    first_write = j.index("write due")
    # the merge (an acknowledged send) and the other sends before any changelog record
    first_changelog = j.index("acked t-due-changelog")
    assert [e for e in j[:first_changelog] if e.startswith("acked")] == ["acked profile_events"] * 2
    # one transaction for the partition: due's, profiles' and the position's records (sent in
    # that order: the position after the data it covers), committed before any state is written
    assert j.count("begin") == 1 and j.count("commit") == 1
    assert first_changelog > j.index("begin")
    changelog_order = [t for t, *_ in rig.producer.sent if t.endswith("-changelog")]
    assert changelog_order == sorted(
        changelog_order, key=["t-due-changelog", "t-profiles-changelog", "t-positions-changelog"].index
    )
    assert changelog_order[-1] == "t-positions-changelog"
    last_acked = max(i for i, e in enumerate(j) if e.endswith("-changelog"))
    assert last_acked < j.index("commit") < first_write
    # the state itself, in RocksDB
    profile = profile_decoder.decode(rig.profiles.get_in(2, ANN))  # type: ignore[arg-type]
    assert profile.email == "ann@example.com" and profile.cart
    assert rig.due.get_in(2, ANN) is not None
    assert rig.positions.get_in(2, position_key(2)) == b"44"  # the next offset to read
    assert rig.producer.changelog("profiles").count((ANN, rig.profiles.get_in(2, ANN), 2)) == 1
    # with the changelog offset faust's recovery starts after, in the same write: the commit
    # marker's, right after the transaction's last record (else a restart would wait for a
    # record after the marker that never comes)
    for table, name in ((rig.profiles, "profiles"), (rig.due, "due"), (rig.positions, "positions")):
        newest = max(
            i for i, (topic, *_rest) in enumerate(rig.producer.sent) if topic == f"t-{name}-changelog"
        )
        assert rig.changelog_offset(table) == newest + 1


async def test_a_partitions_changelog_leaves_as_closed_batches_split_where_full(tmp_path):
    rig = await make_rig(tmp_path)
    keys = [b"ws:anon-%d" % i for i in range(7)]
    await rig.poll_keyed([
        (key, identify(T0, mid=f"m{i}", anonymous_id=f"anon-{i}", email=f"v{i}@example.com"))
        for i, key in enumerate(keys)
    ])  # fmt: skip
    # 7 records into batches of 3 (FakeBatch.capacity): every record once, in order, none lost
    assert [n for topic, n in rig.producer.batches if topic == "t-profiles-changelog"] == [3, 3, 1]
    assert [key for key, _, _ in rig.producer.changelog("profiles")] == keys
    assert all(rig.profiles.get_in(2, key) is not None for key in keys)
    # the offset stored is the commit marker's, after the last record of the last batch (not
    # after the batch's first record)
    newest = max(i for i, (topic, *_rest) in enumerate(rig.producer.sent) if topic == "t-profiles-changelog")
    assert rig.changelog_offset(rig.profiles) == newest + 1


async def test_an_order_in_a_later_batch_cancels_the_reminder_in_rocksdb(tmp_path):
    rig = await make_rig(tmp_path)
    await rig.poll(identify(T0, mid="m1", email="ann@example.com"), cart())
    cart_due = rig.due.get_in(2, ANN)
    assert cart_due is not None and "abandoned_cart" in profile_in(rig).pending
    await rig.poll(track("Order Completed", T0, mid="m3", order_id="o1", total=80), first_offset=42)
    assert "abandoned_cart" not in profile_in(rig).pending  # in RocksDB, not just in the overlay
    assert rig.due.get_in(2, ANN) != cart_due
    assert rig.positions.get_in(2, position_key(2)) == b"43"


def profile_in(rig: Rig, key: bytes = ANN) -> Any:
    raw = rig.profiles.get_in(2, key)
    assert raw is not None
    return profile_decoder.decode(raw)


async def test_a_due_tick_fires_once_and_is_recorded_in_rocksdb(tmp_path):
    rig = await make_rig(tmp_path)
    await rig.poll(identify(T0, mid="m1", email="ann@example.com"), cart())
    assert rig.due.get_in(2, ANN) is not None
    rig.clock.advance(seconds=3)
    before = len(rig.journal)
    async with rig.loop.parts.lock:
        await rig.loop.handle_ticks([ANN], lambda key: 2)
    ticked = rig.journal[before:]
    fired = [decoder(TriggerFired).decode(v) for t, _, v, _ in rig.producer.sent if t == "triggers"]
    assert [t.campaign for t in fired] == ["abandoned_cart"]
    assert rig.due.get_in(2, ANN) is None  # deleted in RocksDB: the tick path records its batch
    assert rig.producer.changelog("due")[-1] == (ANN, None, 2)  # a tombstone
    assert ticked.index("acked triggers") < ticked.index("acked t-due-changelog") < ticked.index("write due")
    async with rig.loop.parts.lock:
        await rig.loop.handle_ticks([ANN], lambda key: 2)  # the timer's heap asks again
    assert sum(1 for t, *_ in rig.producer.sent if t == "triggers") == 1
    assert rig.positions.get_in(2, position_key(2)) == b"42"  # ticks move no position


async def test_a_poll_fetched_before_partitions_moved_is_put_back_not_handled(tmp_path):
    rig = await make_rig(tmp_path)
    rig.owned.clear()  # faust gave partition 2 away while the poll was in flight
    await rig.poll(identify(T0, mid="m1", email="ann@example.com"), cart())
    assert rig.producer.sent == [] and rig.profiles.get_in(2, ANN) is None
    assert rig.loop.consumer.starts[TP2] == 40  # type: ignore[attr-defined]  # read again by its owner


async def test_a_partition_starts_at_its_recorded_position_else_a_legacy_offset_else_the_beginning(tmp_path):
    rig = await make_rig(tmp_path)
    assert rig.loop.consumer.starts == {TP2: "beginning"}  # type: ignore[attr-defined]
    await rig.poll(identify(T0, mid="m1", email="ann@example.com"), cart())
    rig.owned.update({1, 3})
    rig.loop.legacy_offsets = {TopicPartition(EVENTS, 1): 7, TP2: 5}
    assert await rig.loop._follow_assignment()
    assert rig.loop.consumer.starts == {  # type: ignore[attr-defined]
        TopicPartition(EVENTS, 1): 7,
        TP2: 42,  # the recorded position wins over an old group's offset
        TopicPartition(EVENTS, 3): "beginning",
    }


async def test_unacknowledged_sends_record_nothing_and_may_be_retried(tmp_path):
    rig = await make_rig(tmp_path)
    rig.producer.fail_topic = "profile_events"  # the merge record is refused
    with pytest.raises(SendsUnacknowledged):
        await rig.poll(
            track(
                "Product Viewed", T0, mid="m3", anonymous_id="anon-2", product_id="p2", name="Hat", price=20
            ),
            identify(T0, mid="m4", anonymous_id="anon-2", user_id="u-9", email="bo@example.com"),
            key=b"ws:anon-2",
        )
    assert not any("changelog" in topic for topic, *_ in rig.producer.sent)
    assert not any(e.startswith("write") for e in rig.journal)


async def test_a_changelog_failure_writes_no_local_state_and_is_not_retryable(tmp_path):
    rig = await make_rig(tmp_path)
    rig.producer.fail_topic = "t-profiles-changelog"
    with pytest.raises(RuntimeError) as failed:
        await rig.poll(identify(T0, mid="m1", email="ann@example.com"), cart())
    assert not isinstance(failed.value, SendsUnacknowledged)  # the caller must exit: recovery reconciles
    assert rig.profiles.get_in(2, ANN) is None and rig.due.get_in(2, ANN) is None
    assert rig.positions.get_in(2, position_key(2)) is None


async def test_a_fenced_worker_writes_no_local_state_and_must_exit(tmp_path):
    """A later owner of the partition started its transactional id: the commit is refused."""
    rig = await make_rig(tmp_path)
    rig.producer.fenced = True
    with pytest.raises(ProducerFenced) as failed:
        await rig.poll(identify(T0, mid="m1", email="ann@example.com"), cart())
    assert not isinstance(failed.value, SendsUnacknowledged)  # not retried: record_or_die exits
    assert "commit" not in rig.journal
    assert rig.profiles.get_in(2, ANN) is None and rig.due.get_in(2, ANN) is None
    assert rig.positions.get_in(2, position_key(2)) is None


def applied_events() -> float:
    return REGISTRY.get_sample_value("retarget_segmenter_events_total", {"outcome": "applied"}) or 0.0


async def test_counters_count_a_batch_once_it_is_recorded_and_a_failed_one_not_at_all(tmp_path):
    rig = await make_rig(tmp_path)
    before = applied_events()
    rig.producer.fail_topic = "t-profiles-changelog"
    with pytest.raises(RuntimeError):
        await rig.poll(identify(T0, mid="m1", email="ann@example.com"), cart())
    assert applied_events() == before  # handled, not recorded: the replay will count it
    rig.producer.fail_topic = None
    await rig.poll(identify(T0, mid="m1", email="ann@example.com"), cart())  # the replay
    assert applied_events() == before + 2


_letter = decoder(DeadLettered)


def dead_letters(rig: Rig) -> list[DeadLettered]:
    return [_letter.decode(v) for topic, _, v, _ in rig.producer.sent if topic == "dead_letter"]


async def test_hostile_records_are_dead_lettered_with_the_reason_and_the_partition_moves_on(tmp_path):
    rig = await make_rig(tmp_path)
    far_future = track(
        "Product Added", datetime(9999, 12, 31, 23, 0, tzinfo=UTC), mid="f", product_id="p", name="B", price=1
    )
    far_past = track(
        "Product Added", datetime(1, 1, 1, 0, 1, tzinfo=UTC), mid="p", product_id="p", name="B", price=1
    )
    garbage = [
        (ANN, b"\xff\x00garbage"),  # not JSON
        (ANN, None),  # a tombstone on the events topic
        (None, encode(cart("k0"))),  # no key
        (b"ws:\xff\xfe", encode(cart("k1"))),  # a key that isn't UTF-8
        (ANN, b"\xfe" * 1_000_000),  # a binary value near Kafka's limit: its letter base64-encoded
        (b"ws:" + b"k" * 1_040_000, encode(cart("k2"))),  # a key near Kafka's limit
        (ANN, encode(far_future)),
        (ANN, encode(far_past)),
        (b"ws:\x00", encode(cart("k3"))),  # NUL in a key: a profile like any other
    ]
    records = [
        SimpleNamespace(key=k, value=v, offset=40 + i, timestamp=0) for i, (k, v) in enumerate(garbage)
    ]
    await rig.loop._handle_locked({TP2: records})  # raises nothing: no crash, no crash loop
    assert rig.positions.get_in(2, position_key(2)) == b"49"  # recorded: the partition moves on
    letters = {letter.offset: letter for letter in dead_letters(rig)}
    assert {40, 41, 42, 43, 44, 45} <= set(letters)
    assert "not a TrackedEvent" in letters[40].reason
    assert "too large for Kafka" in letters[44].reason and letters[44].value_encoding == "base64"
    assert "a key of 1040003 bytes" in letters[45].reason and "without a key" in letters[42].reason
    assert all(len(v) <= MAX_DEAD_LETTER_BYTES for t, _, v, _ in rig.producer.sent if t == "dead_letter")
    assert 48 not in letters and rig.profiles.get_in(2, b"ws:\x00") is not None


async def test_a_profile_that_would_outgrow_a_changelog_record_dead_letters_the_event_not_the_worker(
    tmp_path,
):
    rig = await make_rig(tmp_path)
    big = "x" * 300_000  # each event fits in Kafka; a cart of all three would not fit a changelog record

    def add(mid: str, product: str) -> Any:
        return track("Product Added", T0, mid=mid, product_id=product, name=big, price=1)

    await rig.poll(add("m1", "p1"), add("m2", "p2"), add("m3", "p3"), add("m4", "p4"))
    assert rig.positions.get_in(2, position_key(2)) == b"44"
    letters = dead_letters(rig)
    assert [letter.offset for letter in letters] == [41, 42, 43], letters
    assert "changelog record" in letters[0].reason
    profile = profile_decoder.decode(rig.profiles.get_in(2, ANN))
    assert set(profile.cart) == {"p1"}


async def test_an_event_whose_forward_is_too_large_for_kafka_is_dead_lettered(tmp_path):
    rig = await make_rig(tmp_path)
    event = identify(T0, mid="m1", user_id="u-1", bio="")
    # the event just fits in Kafka; its forward to the user's profile wraps it and does not
    room = FakeProducer.max_request_size - len(ANN) - len(encode(event)) - 5
    event = identify(T0, mid="m1", user_id="u-1", bio="x" * room)
    await rig.poll(event)
    assert rig.positions.get_in(2, position_key(2)) == b"41"
    (letter,) = dead_letters(rig)
    assert letter.offset == 40 and "too large for Kafka" in letter.reason


def fired_count(campaign: str = "abandoned_cart") -> float:
    labels = {"workspace": "ws", "campaign": campaign}
    return REGISTRY.get_sample_value("retarget_segmenter_triggers_fired_total", labels) or 0.0


class Crashed(BaseException):
    """Stands in for the SIGKILL of a crash point."""


@pytest.mark.parametrize("step", ["segmenter.after_changelog", "segmenter.after_state_write"])
async def test_a_batch_replayed_after_a_crash_is_counted_at_most_once(tmp_path, monkeypatch, step):
    rig = await make_rig(tmp_path)
    await rig.poll(identify(T0, mid="m1", email="ann@example.com"), cart())
    before_fired, before_applied = fired_count(), applied_events()
    later = track("Product Viewed", T0.replace(second=5), mid="m3", product_id="p2", name="Hat", price=5)
    rig.clock.advance(seconds=5)

    def crash_at(name: str) -> None:
        if name == step:
            raise Crashed(name)

    monkeypatch.setattr("retarget.segmenter.recording.crash_point", crash_at)
    with pytest.raises(Crashed):
        await rig.poll(later, first_offset=42)  # fires the cart's wait by the event's time, then dies
    monkeypatch.undo()
    assert (fired_count(), applied_events()) == (before_fired, before_applied)  # the crash came first
    # the restart: faust's recovery brings each store up to its changelog, the batch replays
    for table in (rig.due, rig.profiles, rig.positions):
        name = table.changelog.removeprefix("t-").removesuffix("-changelog")
        table.write_batch(2, [(k, v) for k, v, _ in rig.producer.changelog(name)], 0)
    assert rig.positions.get_in(2, position_key(2)) == b"43"  # recorded with the batch
    await rig.poll(later, first_offset=42)  # and were the batch replayed anyway, nothing counts twice
    assert fired_count() - before_fired <= 1 and applied_events() - before_applied <= 1
    assert sum(1 for t, *_ in rig.producer.sent if t == "triggers") == 1  # the trigger not sent again


async def test_a_record_on_a_partition_its_key_does_not_hash_to_is_rerouted_not_split(tmp_path):
    partitioner, every = DefaultPartitioner(), list(range(8))
    key = next(k for k in (b"ws:anon-%d" % i for i in range(100)) if partitioner(k, every, every) != 2)
    right = partitioner(key, every, every)
    rig = await make_rig(tmp_path)
    rig.loop.parts.partition_of = lambda k: int(partitioner(k, every, every))
    anon = key.decode().partition(":")[2]
    events = [
        identify(T0, mid="m1", anonymous_id=anon, email="ann@example.com"),
        track("Product Added", T0, mid="m2", anonymous_id=anon, product_id="p1", name="Boots", price=80),
    ]
    await rig.poll(*events, key=key)
    # no second profile in partition 2's store, no due entry its timer would never look at
    assert rig.profiles.get_in(2, key) is None and rig.due.get_in(2, key) is None
    # each record as it came, to the key's own partition, acknowledged before the position moved
    rerouted = [(k, v, p) for topic, k, v, p in rig.producer.sent if topic == "events"]
    assert rerouted == [(key, encode(e), right) for e in events]
    assert rig.journal.index("acked events") < rig.journal.index("acked t-positions-changelog")
    assert rig.positions.get_in(2, position_key(2)) == b"42" and dead_letters(rig) == []


async def test_a_record_on_its_keys_own_partition_is_handled_here(tmp_path):
    partitioner, every = DefaultPartitioner(), list(range(8))
    key = next(k for k in (b"ws:anon-%d" % i for i in range(100)) if partitioner(k, every, every) == 2)
    rig = await make_rig(tmp_path)
    rig.loop.parts.partition_of = lambda k: int(partitioner(k, every, every))
    anon = key.decode().partition(":")[2]
    await rig.poll(identify(T0, mid="m1", anonymous_id=anon, email="ann@example.com"), key=key)
    assert rig.profiles.get_in(2, key) is not None
    assert [topic for topic, *_ in rig.producer.sent if topic == "events"] == []


async def test_a_record_without_a_usable_key_is_dead_lettered_not_rerouted(tmp_path):
    rig = await make_rig(tmp_path)
    rig.loop.parts.partition_of = lambda k: 5  # any key would belong elsewhere
    event = identify(T0, mid="m1", email="ann@example.com")
    await rig.poll_keyed([(None, event), (b"ws:" + b"x" * MAX_KEY_BYTES, event)])  # type: ignore[list-item]
    assert [letter.offset for letter in dead_letters(rig)] == [40, 41]
    assert [topic for topic, *_ in rig.producer.sent if topic == "events"] == []


# -- guards each mutation test showed no test relied on ------------------------------------


class TallyCounter:
    """A counter as BatchCounts uses one (a prometheus child: hashable, `inc`)."""

    def __init__(self) -> None:
        self.total = 0.0

    def inc(self, amount: float) -> None:
        self.total += amount


def test_counts_applied_twice_count_once():
    counts, counter = BatchCounts(), TallyCounter()
    counts.inc(counter, 2.0)
    counts.apply()
    counts.apply()  # a later batch's apply must not count this one again
    assert counter.total == 2.0


async def test_a_wait_fired_by_a_later_events_time_counts_as_fired(tmp_path):
    rig = await make_rig(tmp_path)
    await rig.poll(identify(T0, mid="m1", email="ann@example.com"), cart())
    before = fired_count()
    rig.clock.advance(seconds=5)
    await rig.poll(
        track("Product Viewed", T0.replace(second=5), mid="m3", product_id="p2", name="Hat", price=5),
        first_offset=42,
    )
    assert fired_count() == before + 1


@pytest.mark.parametrize("state", ["rebalancing", "in_recovery"])
async def test_a_poll_while_faust_rebalances_or_recovers_is_put_back_not_handled(tmp_path, state):
    rig = await make_rig(tmp_path)
    setattr(rig.loop.parts.app, state, True)
    await rig.poll(identify(T0, mid="m1", email="ann@example.com"), cart())
    assert rig.producer.sent == [] and rig.loop.consumer.starts[TP2] == 40


async def test_only_the_owner_topics_partitions_are_read(tmp_path):
    rig = await make_rig(tmp_path)
    rig.loop.parts.app.assignor = SimpleNamespace(assigned_actives=lambda: {TP(OWNER, 2), TP("t.other", 3)})
    assert rig.loop.wanted() == frozenset({2})


async def test_a_resumed_partition_starts_again_at_its_recorded_position(tmp_path):
    rig = await make_rig(tmp_path)
    await rig.poll(identify(T0, mid="m1", email="ann@example.com"), cart())
    await rig.loop.pause()  # faust moved partitions; it gave the same ones back
    rig.loop.consumer.starts.clear()
    assert await rig.loop._follow_assignment()
    assert rig.loop.consumer.starts == {TP2: 42}  # what was fetched ahead meanwhile is read again


async def test_pause_waits_for_the_batch_in_hand():
    lock = asyncio.Lock()
    loop = SimpleNamespace(parts=SimpleNamespace(lock=lock), paused=False, pauses=0)
    async with lock:
        pausing = asyncio.ensure_future(EventsLoop.pause(loop))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        assert not loop.paused  # not while a batch holds the lock
    await pausing
    assert loop.paused


async def test_a_batch_whose_sends_failed_leaves_no_pending_writes_in_the_recorder(tmp_path):
    rig = await make_rig(tmp_path)
    rig.producer.fail_topic = "profile_events"
    with pytest.raises(SendsUnacknowledged):
        await rig.loop._handle(  # not _handle_locked: the recorder itself forgets the batch
            {
                TP2: [
                    SimpleNamespace(
                        key=ANN, value=encode(identify(T0, mid="m1", user_id="u-1")), offset=40, timestamp=0
                    )
                ]
            }
        )
    assert all(len(overlay) == 0 for overlay, _ in rig.loop.parts.recorder.tables)


async def test_failed_ticks_leave_no_pending_writes_and_ticks_write_in_their_keys_partition(tmp_path):
    rig = await make_rig(tmp_path)
    await rig.poll(identify(T0, mid="m1", email="ann@example.com"), cart())
    rig.clock.advance(seconds=3)
    rig.producer.fail_topic = "triggers"
    with pytest.raises(SendsUnacknowledged):
        async with rig.loop.parts.lock:
            await rig.loop.handle_ticks([ANN], lambda key: 2)
    assert all(len(overlay) == 0 for overlay, _ in rig.loop.parts.recorder.tables)
    rig.producer.fail_topic = None
    rig.loop._enter_partition(0)  # the last batch was another partition's
    async with rig.loop.parts.lock:
        await rig.loop.handle_ticks([ANN], lambda key: 2)
    assert rig.due.get_in(2, ANN) is None  # the fired wait's entry deleted where the key lives


async def test_a_tick_that_fails_midway_leaves_no_pending_writes(tmp_path, monkeypatch):
    rig = await make_rig(tmp_path)
    due_view = rig.loop.parts.recorder.tables[0][0]

    async def half_done(key: bytes, until: object = None) -> None:
        due_view[key] = b"2026-03-01T10:00:02+00:00"
        await rig.loop.parts.recorder.outputs("triggers", key, b"{}", True)
        raise RuntimeError("a bug in the rules")

    monkeypatch.setattr(rig.loop.parts.processor, "on_tick", half_done)
    with pytest.raises(RuntimeError):
        async with rig.loop.parts.lock:
            await rig.loop.handle_ticks([ANN], lambda key: 2)
    assert all(len(overlay) == 0 for overlay, _ in rig.loop.parts.recorder.tables)
    rig.producer.fail_topic = "triggers"  # were its send still awaited, the next batch would fail
    await rig.poll(identify(T0, mid="m1", email="ann@example.com"))
    assert rig.positions.get_in(2, position_key(2)) == b"41"


async def test_an_order_stamped_far_ahead_does_not_void_every_later_cart_add(tmp_path):
    rig = await make_rig(tmp_path)
    await rig.poll(
        identify(T0, mid="m1", email="ann@example.com"),
        track("Order Completed", T0.replace(year=2027), mid="m2", order_id="o1", total=80),
        cart("m3"),
    )
    assert "abandoned_cart" in profile_in(rig).pending or dead_letters(rig)


@pytest.mark.parametrize("error", [rocksdict.DbClosedError("DB instance already closed"), OSError("disk")])
async def test_a_local_store_failure_is_raised_never_dead_lettered(error: BaseException) -> None:
    from retarget.segmenter.dead_letters import dead_letter_on_failure

    letters: list[str] = []

    async def failing() -> None:
        raise error

    async def to_dead_letters(reason: str) -> None:
        letters.append(reason)

    with pytest.raises(type(error)):  # the worker exits; its restart repeats the batch
        await dead_letter_on_failure(failing(), to_dead_letters, "t.events")
    assert letters == []  # dead-lettered, the event would be lost with its position moved past


def rocksdb_lock_error(path: Path) -> Exception:
    """What rocksdict raises when a partition database is opened while a handle still holds it
    (faust pops a revoked partition's database without closing it): a bare Exception."""
    held = rocksdict.Rdict(str(path))
    try:
        rocksdict.Rdict(str(path))
    except Exception as exc:
        return exc
    finally:
        held.close()
    raise AssertionError("the second open succeeded")


async def test_rocksdbs_own_errors_are_raised_never_dead_lettered_and_other_bugs_are(tmp_path):
    from retarget.segmenter.dead_letters import dead_letter_on_failure

    lock_error = rocksdb_lock_error(tmp_path / "db")
    assert type(lock_error) is Exception and "IO error" in str(lock_error)
    letters: list[str] = []

    async def fail_with(error: BaseException) -> None:
        raise error

    async def to_dead_letters(reason: str) -> None:
        letters.append(reason)

    for error in (lock_error, Exception("Corruption: block checksum mismatch")):
        with pytest.raises(Exception, match=r"IO error|Corruption"):
            await dead_letter_on_failure(fail_with(error), to_dead_letters, "t.events")
    assert letters == []
    await dead_letter_on_failure(
        fail_with(Exception("a bug the record set off")), to_dead_letters, "t.events"
    )
    assert len(letters) == 1  # anything else is still the record's: dead-lettered, the partition moves on


async def test_a_store_that_cannot_be_opened_mid_batch_moves_no_position_past_the_event(
    tmp_path, monkeypatch
):
    rig = await make_rig(tmp_path)
    await rig.poll(identify(T0, mid="m1", email="ann@example.com"))
    lock_error = rocksdb_lock_error(tmp_path / "held")

    def locked(partition: int) -> Any:
        raise lock_error

    monkeypatch.setattr(rig.profiles, "_db", locked)
    with pytest.raises(Exception, match="IO error"):  # the worker exits (record_or_die); its restart replays
        await rig.poll(cart(), first_offset=41)
    assert rig.positions.get_in(2, position_key(2)) == b"41" and dead_letters(rig) == []


async def test_a_pause_while_partitions_are_being_assigned_is_not_undone(tmp_path):
    rig = await make_rig(tmp_path)
    await rig.loop.pause()  # faust moves partitions
    consumer = rig.loop.consumer
    looked_up = consumer.position

    async def position_while_faust_rebalances_again(tp: TopicPartition) -> int:
        await rig.loop.pause()  # the next rebalance began while the loop awaited the broker
        return await looked_up(tp)

    consumer.position = position_while_faust_rebalances_again  # type: ignore[method-assign]
    assert not await rig.loop._follow_assignment()
    assert rig.loop.paused  # still paused: the next turn seeks again to the recovered positions
    consumer.position = looked_up  # type: ignore[method-assign]
    assert await rig.loop._follow_assignment() and not rig.loop.paused


def rerouted_total() -> float:
    return REGISTRY.get_sample_value("retarget_segmenter_events_total", {"outcome": "rerouted"}) or 0.0


async def test_a_rerouted_record_is_counted_as_rerouted_not_as_handled(tmp_path):
    partitioner, every = DefaultPartitioner(), list(range(8))
    key = next(k for k in (b"ws:anon-%d" % i for i in range(100)) if partitioner(k, every, every) != 2)
    rig = await make_rig(tmp_path)
    rig.loop.parts.partition_of = lambda k: int(partitioner(k, every, every))
    anon = key.decode().partition(":")[2]
    before, applied = rerouted_total(), applied_events()
    await rig.poll(identify(T0, mid="m1", anonymous_id=anon, email="ann@example.com"), key=key)
    assert rerouted_total() == before + 1 and applied_events() == applied  # its owner applies it


async def test_only_rocksdbs_own_bare_exceptions_are_store_errors_not_a_bugs_message():
    from retarget.segmenter.dead_letters import is_local_store_error

    assert is_local_store_error(Exception("IO error: No space left on device"))
    assert is_local_store_error(OSError("disk"))
    # a bug's exception is the record's even when its message starts like RocksDB's (a record's
    # own text in it): raised, it would stop the partition on every replay
    assert not is_local_store_error(ValueError("IO error in a field the record carries"))
    assert not is_local_store_error(KeyError("Corruption"))
    assert not is_local_store_error(Exception("Invalid argument: a record's key"))
