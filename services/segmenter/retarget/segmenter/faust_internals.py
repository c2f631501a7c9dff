"""Every use of a faust internal, in one place (faust-streaming 0.15).

The segmenter writes faust's tables itself (events_loop.py, recording.py) and reads faust's
state for gauges; faust documents no API for either. Each access below is a private
attribute or format of faust's; tests/unit/segmenter/test_faust_internals.py checks every
one against the installed faust, so an upgrade that changes any of them fails that test
instead of silently corrupting a table or a recovery.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from faust.streams import _current_event

#: the key under which faust's RocksDB store keeps, per partition database, the last changelog
#: offset applied to it; recovery reads the changelog from the next offset
#: (faust.stores.rocksdb.Store.offset_key / persisted_offset)
OFFSET_KEY = b"__faust\0offset__"


def encode_offset(offset: int) -> bytes:
    """The value faust stores under OFFSET_KEY (Store.set_persisted_offset: str(offset).encode())."""
    return str(offset).encode()


def partition_db(table: Any, partition: int) -> Any:
    """The open database of one table partition: a rocksdict Rdict, or the memory store's dict."""
    store = table.data
    if hasattr(store, "_db_for_partition"):
        return store._db_for_partition(partition)  # opens it if faust has not yet
    return store.data


def open_partition_dbs(table: Any) -> dict[int, Any] | None:
    """The databases faust has open, by partition (None for the memory store)."""
    dbs: dict[int, Any] | None = getattr(table.data, "_dbs", None)
    return dbs


def visible_items(table: Any, db: Any) -> Iterable[tuple[bytes, bytes]]:
    """A partition database's items without faust's offset key."""
    items: Iterable[tuple[bytes, bytes]] = table.data._visible_items(db)
    return items


def set_current_event(event: Any) -> None:
    """Make `event` what `faust.streams.current_event()` returns: faust picks a table write's
    store and changelog partition from it."""
    _current_event.set(weakref.ref(event) if event is not None else None)


def read_offset(consumer: Any, tp: Any) -> int | None:
    """The last offset faust's consumer handed to a stream (faust keeps no public position)."""
    offset: int | None = consumer._read_offset.get(tp)
    return offset


#: (changelog partition -> table, its last offsets stored (updated), the highwaters to reach)
BeforeRecovery = Callable[[dict[Any, Any], Any, dict[Any, int]], Awaitable[None]]


def before_recovery_reads(app: Any, restore: BeforeRecovery) -> None:
    """Run `restore` once faust's recovery measured its active changelog partitions' highwaters
    and before it reads where each starts (`Recovery._build_offsets`, called with the active
    partitions and the `active_offsets` it took from the stores' persisted offsets)."""
    recovery = app.tables.recovery
    build_offsets = recovery._build_offsets

    async def restore_then_build_offsets(consumer: Any, tps: Any, destination: Any, title: str) -> None:
        if title == "active" and tps:
            tables = {tp: recovery.tp_to_table[tp] for tp in tps}
            await restore(tables, destination, dict(recovery.active_highwaters))
        await build_offsets(consumer, tps, destination, title)

    recovery._build_offsets = restore_then_build_offsets


class _TransactionalView:
    """The app as faust's recovery sees it: `in_transaction` (see recover_read_committed);
    every other attribute, read or written, is the app's."""

    def __init__(self, app: Any) -> None:
        object.__setattr__(self, "_app", app)

    in_transaction = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._app, name, value)


def recover_read_committed(app: Any) -> None:
    """faust restores (and standby-replicates) the tables from committed changelog records only.

    faust ties both to `processing_guarantee="exactly_once"`, which would also run every agent
    in faust's own transactions; the segmenter writes its changelogs itself (fencing.py), so:
    - the worker consumer is built `read_committed` (the isolation level aiokafka hands its
      fetcher at start; its end offsets are then the last stable offsets);
    - recovery steps over a transaction marker at a changelog's end (no record is ever
      delivered there: faust would wait for one forever). faust does it only when
      `app.in_transaction` (Recovery._restart_recovery, detect_aborted_tx: after two quiet
      5 s polls, a position at the end counts as caught up), so recovery sees a view of the
      app where it is true.
    """
    thread = app.consumer._thread
    create = thread._create_worker_consumer

    def create_read_committed(transport: Any) -> Any:
        consumer = create(transport)
        consumer._isolation_level = "read_committed"
        return consumer

    thread._create_worker_consumer = create_read_committed
    app.tables.recovery.app = _TransactionalView(app)
