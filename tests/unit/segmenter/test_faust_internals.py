"""Every faust internal the segmenter relies on (faust_internals.py), checked against the
installed faust: an upgrade that renames, moves or re-encodes any of them fails here, loudly,
instead of corrupting a table or a recovery in production."""

from __future__ import annotations

import inspect
from collections import Counter
from typing import Any

import faust
from faust.streams import current_event
from faust.types import TP

from retarget.segmenter import faust_internals
from retarget.segmenter.recording import PartitionTable
from retarget.segmenter.testing import rocksdb_tables


def test_the_offset_key_and_its_encoding_are_faust_stores(tmp_path):
    (table,) = rocksdb_tables(str(tmp_path), "profiles")
    store = table.data
    assert store.offset_key == faust_internals.OFFSET_KEY
    tp = TP(table.changelog_topic_name, 1)
    store.set_persisted_offset(tp, 41)
    assert faust_internals.partition_db(table, 1).get(
        faust_internals.OFFSET_KEY
    ) == faust_internals.encode_offset(41)
    # what we write, faust's recovery reads: the offset key in the same write batch as the data
    PartitionTable(table).write_batch(1, [(b"k", b"v")], 57)
    assert store.persisted_offset(tp) == 57
    assert list(faust_internals.visible_items(table, faust_internals.partition_db(table, 1))) == [
        (b"k", b"v")
    ]
    assert table.changelog_topic_name == "t-profiles-changelog"  # recording.py sends there


def test_partition_databases_are_faust_stores_own(tmp_path):
    (table,) = rocksdb_tables(str(tmp_path), "profiles")
    store = table.data
    assert list(inspect.signature(store._db_for_partition).parameters) == ["partition"]
    db = faust_internals.partition_db(table, 3)
    assert faust_internals.open_partition_dbs(table) == {3: db}  # the open databases, by partition
    db.put(b"k", b"v")
    store.set_persisted_offset(TP(table.changelog_topic_name, 3), 1)
    assert list(faust_internals.visible_items(table, db)) == [(b"k", b"v")]  # the offset key hidden
    assert table[b"k"] == b"v"  # faust's own read path finds what we wrote behind its back


def test_the_current_event_is_the_context_variable_faust_reads():
    class Event:  # weak-referenceable, as faust's events are
        pass

    event = Event()
    faust_internals.set_current_event(event)
    assert current_event() is event
    faust_internals.set_current_event(None)
    assert current_event() is None


async def test_the_read_offsets_are_where_faust_keeps_them(monkeypatch):
    app = faust.App("t", broker="kafka://127.0.0.1:1", autodiscover=False)
    consumer = app.consumer
    tp = TP("t.events.v1", 0)
    assert faust_internals.read_offset(consumer, tp) is None

    async def no_broker_seek(partition: TP, offset: int) -> None:
        pass

    monkeypatch.setattr(consumer, "_seek", no_broker_seek)
    # faust's own code sets the read offset (setting it here would pass even if faust moved it)
    await consumer.seek(tp, 9)
    assert faust_internals.read_offset(consumer, tp) == 9


async def test_the_restore_runs_where_fausts_recovery_reads_its_start_offsets(tmp_path):
    (table,) = rocksdb_tables(str(tmp_path), "profiles")
    recovery = table.app.tables.recovery
    params = list(inspect.signature(recovery._build_offsets).parameters)
    assert params == ["consumer", "tps", "destination", "title"]
    tp = TP(table.changelog_topic_name, 1)
    recovery.tp_to_table[tp] = table
    recovery.active_highwaters[tp] = 9
    seen: list[tuple[dict, int | None, dict]] = []

    async def restore(tables: dict, offsets: Any, highwaters: dict) -> None:
        seen.append((dict(tables), offsets[tp], highwaters))
        offsets[tp] = 9  # restored up to the highwater

    faust_internals.before_recovery_reads(table.app, restore)

    class Consumer:  # faust's consumer, as _build_offsets uses it
        async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
            return {t: 0 for t in tps}

    offsets = Counter({tp: 3})  # what the store held
    await recovery._build_offsets(Consumer(), {tp}, offsets, "active")
    assert seen == [({tp: table}, 3, {tp: 9})] and offsets[tp] == 9  # faust starts after the restore
    await recovery._build_offsets(Consumer(), {tp}, Counter({tp: 3}), "standby")
    assert len(seen) == 1  # standbys are faust's own


async def test_recovery_reads_committed_records_and_steps_over_transaction_markers():
    from faust.tables import recovery as faust_recovery
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    app = faust.App("t", broker="kafka://127.0.0.1:1", autodiscover=False)
    thread = app.consumer._thread
    assert isinstance(thread, AIOKafkaConsumerThread)
    faust_internals.recover_read_committed(app)
    # the worker consumer faust builds is read_committed (aiokafka hands this to its fetcher)
    consumer = thread._create_worker_consumer(app.transport)
    assert consumer._isolation_level == "read_committed"
    assert "isolation_level=self._isolation_level" in inspect.getsource(type(consumer).start)
    await consumer.stop()
    # faust's recovery steps over a trailing transaction marker only when it sees in_transaction
    recovery = app.tables.recovery
    source = inspect.getsource(faust_recovery)
    assert "if timeout and self.app.in_transaction and timeout_count > 1:" in source
    assert "await detect_aborted_tx()" in source
    assert recovery.app.in_transaction is True
    assert app.in_transaction is False  # the rest of faust runs without its own transactions
    # every other attribute is the app's, written through too (recovery sets app.in_recovery)
    assert recovery.app.conf is app.conf
    recovery.app.in_recovery = True
    assert app.in_recovery is True
    app.in_recovery = False


async def test_a_rocksdb_worker_restores_in_batches_within_half_of_fausts_wait(tmp_path, monkeypatch):
    """app.py wires the batched restore for the RocksDB store, with a budget that leaves faust's
    `_build_offsets` (bounded by broker_request_timeout) time to finish after it."""
    from retarget.segmenter import app as app_module
    from retarget.segmenter.settings import SegmenterSettings

    budgets: list[float] = []

    async def restore_partitions(
        settings: Any, tables: Any, offsets: Any, highwaters: Any, budget_s: float
    ) -> int:
        budgets.append(budget_s)
        return 0

    async def send(*args: Any) -> None:
        return None

    monkeypatch.setattr(app_module, "restore_partitions", restore_partitions)
    settings = SegmenterSettings(
        store="rocksdb://", data_dir=str(tmp_path), topic_prefix="trest", topic_partitions=2
    )
    app = app_module.create_app(settings, send=send)
    recovery = app.tables.recovery
    tp = TP(app.tables["profiles"].changelog_topic_name, 0)
    recovery.tp_to_table[tp] = app.tables["profiles"]

    class Consumer:
        async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
            return {t: 0 for t in tps}

    await recovery._build_offsets(Consumer(), {tp}, Counter({tp: None}), "active")
    timeout = app.conf.broker_request_timeout
    assert budgets == [0.5 * timeout] and timeout > 0
