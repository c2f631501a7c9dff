"""Where a key lives (wiring.key_partitioner): the producers' partitioner, cached for the keys
ingest makes, never holding the long keys a record produced directly may carry."""

from __future__ import annotations

import sys

from aiokafka.partitioner import DefaultPartitioner

from retarget.segmenter.processor import MAX_KEY_BYTES
from retarget.segmenter.wiring import key_partitioner


def test_every_key_lives_where_the_producers_partitioner_puts_it():
    every = list(range(12))
    partition_of = key_partitioner(12)
    for key in (b"ws:anon-1", b"ws:" + "ü".encode() * 300, b"ws:" + b"x" * (MAX_KEY_BYTES - 3)):
        assert partition_of(key) == partition_of(key) == DefaultPartitioner()(key, every, every)


def test_long_keys_are_not_kept_by_the_cache():
    """Every event's key is looked up (re-routing): cached, 65,536 distinct 64 KiB keys produced
    directly would hold 4 GiB in the worker."""
    partition_of = key_partitioner(12)
    long_key = b"ws:" + b"x" * (MAX_KEY_BYTES - 3)
    short_key = b"ws:anon-" + b"1" * 20
    before = sys.getrefcount(long_key), sys.getrefcount(short_key)
    partition_of(long_key)
    partition_of(short_key)
    assert sys.getrefcount(long_key) == before[0]  # not held
    assert sys.getrefcount(short_key) > before[1]  # ingest's keys are cached
