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
