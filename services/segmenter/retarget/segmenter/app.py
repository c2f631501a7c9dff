"""The faust application: faust owns the profile tables and the partitions; the events loop,
a faust agent and the wall-clock timer take turns writing them.

Three co-partitioned topics, so every record about a key is handled by the worker that owns
the key's partition: the events topic, read by the events loop (events_loop.py: batches
straight into the tables' stores and changelogs, ~4x faust's own per-record path); the
internal `profile-events` topic (events re-keyed to their known profile, merge records —
identity.py) and `privacy` (erasure requests, erasure.py), read by a faust agent.

Records are taken in batches (batching.py): each touched key is written once per batch,
after all of the batch's acknowledged sends were acknowledged. One batch at a time (one
lock), whoever's it is.

The wall-clock timer pops due keys from an in-memory heap (schedule.py) mirroring the
durable `due` table of the partitions this worker owns, and handles them itself, as a batch
of ticks between the other batches: each profile is re-checked (an exit event may have
arrived) and its trigger emitted. The ticks used to be records on an internal topic, read
back by the agent; they then waited behind any backlog of events, so a burst of traffic
made every due trigger late by the time the burst took. Faust's windowed tables keep expiry
only in memory, so they are not used for this.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any

import faust
from aiokafka.partitioner import DefaultPartitioner
from faust.streams import current_event

from retarget.common.clock import Clock, SystemClock
from retarget.common.kafka import make_producer
from retarget.common.metrics import labelled
from retarget.common.privacy import privacy_topic
from retarget.common.schemas import encode
from retarget.common.topics import Topics
from retarget.segmenter import batch_agent, faust_internals, metrics
from retarget.segmenter.batching import Batch, BatchOutputs, SendsUnacknowledged, WriteBehind
from retarget.segmenter.campaigns import CampaignSet, load_campaigns
from retarget.segmenter.dead_letters import dead_letter_on_failure, dead_letter_record
from retarget.segmenter.erasure import is_erasure_step
from retarget.segmenter.events_loop import EventsLoop, LoopParts
from retarget.segmenter.ops import add_ops_pages, partition_items, table_size
from retarget.segmenter.processor import ProfileProcessor, Send, Table, due_epoch
from retarget.segmenter.profiles_api import add_profile_pages
from retarget.segmenter.recording import LazyProducer, PartitionTable, Recorder
from retarget.segmenter.schedule import DueSchedule
from retarget.segmenter.settings import SegmenterSettings
from retarget.segmenter.workspace_modes import ConsentModes, PgConsentModes

log = logging.getLogger(__name__)


def profile_events_topic_name(prefix: str) -> str:
    """Internal topic of events re-keyed to their known profile and of merge records."""
    return f"{prefix}.profile-events.v1"


def internal_topics(prefix: str) -> list[str]:
    """The topics the worker creates beside the shared ones (privacy: written by ingest and the CLI)."""
    return [profile_events_topic_name(prefix), privacy_topic(prefix)]


def campaigns_from(settings: SegmenterSettings) -> CampaignSet:
    waits: dict[str, str | float] = dict(settings.campaign_waits)
    if settings.cart_wait_s is not None:
        waits.setdefault("abandoned_cart", settings.cart_wait_s)
    return load_campaigns(settings.campaigns_dir, wait_scale=settings.wait_scale, waits=waits)


def create_app(
    settings: SegmenterSettings,
    *,
    campaigns: CampaignSet | None = None,
    clock: Clock | None = None,
    send: Send | None = None,
    consent_modes: ConsentModes | None = None,
) -> faust.App:
    """The worker's app; `send` replaces producing to Kafka in agent tests."""
    clock = clock or SystemClock()
    modes = consent_modes or ConsentModes(
        PgConsentModes(settings.database_url, timeout_s=settings.consent_db_timeout_s)
    )
    campaigns = campaigns if campaigns is not None else campaigns_from(settings)
    topics = Topics(settings.topic_prefix)
    app = faust.App(
        f"{settings.topic_prefix}-segmenter",
        broker=[f"kafka://{host}" for host in settings.kafka_bootstrap.split(",")],
        store=settings.store,
        datadir=settings.data_dir,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        table_standby_replicas=settings.standby_replicas,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        consumer_auto_offset_reset="earliest",
        consumer_group_instance_id=settings.group_instance_id,
        producer_acks=-1,
        # faust's default linger of 0 sends every changelog record in its own request; longer
        # lingers batch more but every acknowledged send (a trigger, a merge) waits for it
        producer_linger=settings.producer_linger_s,
        producer_compression_type="lz4",
        producer_max_batch_size=256 * 1024,
        web_bind=settings.http_host,
        web_host=settings.http_host,
        web_port=settings.web_port,
        autodiscover=False,
        # keys and values are bytes we encode ourselves (msgspec): faust must not (de)serialise
        key_serializer="raw",
        value_serializer="raw",
    )
    profile_events_name = profile_events_topic_name(settings.topic_prefix)
    privacy_name = privacy_topic(settings.topic_prefix)
    # a table picks "raw" storage only from key_type/value_type bytes (else JSON)
    table_options: dict[str, Any] = {
        "partitions": settings.topic_partitions,
        "key_type": bytes,
        "value_type": bytes,
    }
    if settings.store.startswith("rocksdb"):
        # a database per table partition, each with its own memtables and cache: bound them
        table_options["options"] = {
            "write_buffer_size": settings.rocksdb_write_buffer_mb * 2**20,
            "max_write_buffer_number": 2,
            "block_cache_size": settings.rocksdb_block_cache_mb * 2**20,
        }
    profiles = app.Table("profiles", default=None, **table_options)
    due = app.Table("due", default=None, **table_options)
    # events partition -> the next offset the events loop reads (events_loop.py, recording.py)
    positions = app.Table("positions", default=None, **table_options)
    schedule = DueSchedule()
    # every record and changelog record of ours goes out through one producer (recording.py)
    producer = LazyProducer(
        lambda: make_producer(
            settings, linger_ms=int(settings.producer_linger_s * 1000), max_batch_size=256 * 1024
        )
    )
    names = {
        "events": topics.events,
        "triggers": topics.triggers,
        "profile_events": profile_events_name,
        "dead_letter": topics.dead_letter,
    }

    async def produce(output: str, key: bytes, value: bytes, wait: bool, partition: int | None) -> Any:
        return await producer.send(names[output], value, key=key, partition=partition)

    # the agent reads and writes through overlays; the real tables get each key once per batch
    agent_tables = [PartitionTable(profiles), PartitionTable(due)]
    # each batch's counters, applied once it is recorded (agent tests: at once)
    agent_counts = metrics.BatchCounts(immediate=send is not None)
    loop_counts = metrics.BatchCounts()
    if send is None:
        batch_outputs = BatchOutputs(produce)
        pending_profiles = WriteBehind(agent_tables[0], current=agent_tables[0].current_partition)
        pending_due = WriteBehind(agent_tables[1], current=agent_tables[1].current_partition)
        # due before profiles: recording.py says why
        recorder = Recorder(
            [(pending_due, agent_tables[1]), (pending_profiles, agent_tables[0])],
            batch_outputs,
            producer,
            counts=agent_counts,
        )
        batch = Batch(
            [pending_profiles, pending_due], batch_outputs, batch_agent.enter_event, recorder.record
        )
    else:  # agent tests: their `send`, faust's own table writes on the memory store

        async def enqueue_to(output: str, key: bytes, value: bytes, wait: bool, partition: int | None) -> Any:
            await send(output, key, value, wait, partition)
            return None

        batch_outputs = BatchOutputs(enqueue_to)
        pending_profiles = WriteBehind(profiles, current=current_event)
        pending_due = WriteBehind(due, current=current_event)
        batch = Batch([pending_profiles, pending_due], batch_outputs, batch_agent.enter_event)

    def make_processor(
        profiles_view: Table, due_view: Table, sends: Send, counts: metrics.BatchCounts
    ) -> ProfileProcessor:
        return ProfileProcessor(
            profiles=profiles_view,
            due=due_view,
            send=sends,
            campaigns=campaigns,
            clock=clock,
            schedule=schedule,
            scan=lambda partition: partition_items(profiles, partition, settings.topic_partitions),
            partitions=settings.topic_partitions,
            dedupe_window=settings.dedupe_window,
            max_hops=settings.max_forward_hops,
            consent_modes=modes,
            windows=settings.attribution_windows(),
            counts=counts,
        )

    processor = make_processor(pending_profiles, pending_due, batch_outputs, agent_counts)

    async def dead_letter(event: Any, reason: str) -> None:
        message = event.message
        await send_dead_letter(
            batch_outputs, message.topic, message.partition, message.offset, event.key, event.value, reason
        )

    async def send_dead_letter(
        sends: Send, topic: str, partition: int | None, offset: int | None, key: Any, raw: Any, reason: str
    ) -> None:
        labelled(metrics.EVENTS, "poison").inc()
        letter = dead_letter_record(topic, partition, offset, key, raw, reason, clock.now())
        await sends("dead_letter", key, encode(letter), False)
        log.warning("dead-lettered a record", extra={"reason": reason, "topic": topic})

    kinds = {batch_agent.TICKS: "tick", profile_events_name: "internal", privacy_name: "privacy"}

    async def handle(event: Any) -> None:
        topic = event.message.topic
        for table in agent_tables:  # the partition the record's key lives in (a tick's too)
            table.partition = event.message.partition
        kind = kinds.get(topic, "event")
        started = time.perf_counter()

        async def by_kind() -> None:
            if kind == "tick":
                if app.rebalancing or app.in_recovery:  # began while waiting for the agent's batch
                    schedule.dirty = True  # the key may have moved: the next pass looks again
                    return
                await processor.on_tick(event.key)
            elif kind == "internal":
                await processor.on_internal(event.key, event.value)
            elif kind == "privacy":
                await processor.on_privacy(event.key, event.value)
            else:
                await processor.on_event(event.key, event.value)

        async def to_dead_letters(reason: str) -> None:
            await dead_letter(event, reason)

        await dead_letter_on_failure(by_kind(), to_dead_letters, topic)
        labelled(metrics.PROCESSING, kind).observe(time.perf_counter() - started)

    def scans_tables(event: Any) -> bool:
        """Erasure reads the real tables (a scan): it gets a batch of its own."""
        topic = event.message.topic
        return topic == privacy_name or (topic == profile_events_name and is_erasure_step(event.value))

    # the agent's batches and the timer's batches of ticks take turns: each sees the tables
    # as the previous one left them
    one_batch_at_a_time = asyncio.Lock()

    @app.agent(app.topic(profile_events_name, privacy_name))
    async def segmenter(stream: Any) -> None:
        await batch_agent.consume(
            stream,
            batch,
            handle,
            scans_tables,
            size=settings.batch_size,
            within=settings.batch_within_s,
            lock=one_batch_at_a_time,
        )

    seen_assignment: set[Any] = set()
    every_partition = list(range(settings.topic_partitions))
    partitioner = DefaultPartitioner()  # the producers' (ingest's, faust's): where a key lives

    @functools.lru_cache(maxsize=65_536)  # the timer asks again for the keys it re-arms
    def partition_of(key: bytes) -> int:
        return int(partitioner(key, every_partition, every_partition))

    # the events topic's hot path (events_loop.py): the same rules and tables, without faust's
    # per-record machinery; faust assigns its partitions and keeps the tables' changelogs
    loop_tables = [PartitionTable(profiles), PartitionTable(due)]
    loop_positions = PartitionTable(positions)

    def due_of(key: bytes) -> bytes | None:
        return loop_tables[1].get_in(partition_of(key), key)

    events_loop: EventsLoop | None = None

    async def run_events_loop() -> None:
        nonlocal events_loop
        loop_outputs = BatchOutputs(produce)
        profiles_view = WriteBehind(loop_tables[0], current=loop_tables[0].current_partition)
        due_view = WriteBehind(loop_tables[1], current=loop_tables[1].current_partition)

        async def loop_dead_letter(
            topic: str, part: int, offset: int, key: Any, raw: Any, reason: str
        ) -> None:
            await send_dead_letter(loop_outputs, topic, part, offset, key, raw, reason)

        parts = LoopParts(
            app=app,
            processor=make_processor(profiles_view, due_view, loop_outputs, loop_counts),
            # due before profiles: recording.py says why
            recorder=Recorder(
                [(due_view, loop_tables[1]), (profiles_view, loop_tables[0])],
                loop_outputs,
                producer,
                positions=loop_positions,
                counts=loop_counts,
            ),
            positions=loop_positions,
            lock=one_batch_at_a_time,
            dead_letter=loop_dead_letter,
        )
        events_loop = EventsLoop(
            parts,
            bootstrap=settings.kafka_bootstrap,
            events_topic=topics.events,
            owner_topic=profile_events_name,
            # the groups older versions committed the events' offsets under (an upgrade starts there)
            legacy_groups=(f"{app.conf.id}-events", app.conf.id),
            batch_size=settings.batch_size,
            within_s=settings.batch_within_s,
        )
        # the producer is not stopped: every batch awaited its records' acknowledgements
        await events_loop.run()

    if send is None:  # agent tests drive the agent alone
        app.task(run_events_loop)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode types handlers as sync
    async def _finish_before_partitions_move(sender: Any, *args: Any, **kwargs: Any) -> None:
        if events_loop is not None:
            await events_loop.pause()

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # mode types handlers as sync
    async def _finish_before_stopping(sender: Any, *args: Any, **kwargs: Any) -> None:
        if events_loop is not None:
            await events_loop.stop()

    @due.on_recover
    async def _recovered() -> None:
        schedule.dirty = True

    async def fire(keys: list[bytes]) -> None:
        try:
            if events_loop is not None and events_loop.running:  # its fast path, no faust per key
                await events_loop.handle_ticks(keys, partition_of)
            else:
                ticks = [batch_agent.tick_event(app, key, partition_of(key)) for key in keys]
                await batch_agent.handle_batch(ticks, batch, handle, scans_tables)
        except SendsUnacknowledged:
            # nothing of the batch was recorded (recording.py): the due entries stay, fire next time
            log.exception("a batch of due triggers could not be recorded; retrying")
            schedule.dirty = True

    @app.timer(interval=settings.timer_interval_s)
    async def find_due() -> None:
        # nothing fires before the workspaces' consent modes were loaded (or found unreachable)
        if not modes.attempted:
            return
        # under the lock no batch is half-written: the tables are the whole truth
        async with one_batch_at_a_time:
            # while partitions move or tables recover, the local view of `due` is incomplete
            if app.rebalancing or app.in_recovery:
                schedule.dirty = True
                return
            actives = set(app.assignor.assigned_actives())
            if actives != seen_assignment:
                seen_assignment.clear()
                seen_assignment.update(actives)
                schedule.dirty = True
            if schedule.dirty or schedule.needs_compaction():
                schedule.rebuild(due.items(), due_epoch)
                log.info("due schedule rebuilt", extra={"entries": len(schedule)})
            # a batch's worth at a time: the other batches get their turns in between
            keys = schedule.take_due(clock.timestamp(), due_of, limit=settings.batch_size)
            if keys:
                # a worker told to stop finishes this batch first; one that can't be recorded exits
                await batch_agent.record_or_die(fire(keys))
        metrics.DUE_SCHEDULED.set(len(schedule))

    @app.task
    async def load_consent_modes() -> None:
        await modes.refresh()
        metrics.CONSENT_MODES.set(len(modes))

    @app.timer(interval=settings.consent_refresh_s)
    async def reload_consent_modes() -> None:
        await modes.refresh()
        metrics.CONSENT_MODES.set(len(modes))

    @app.timer(interval=5.0)
    async def gauges() -> None:
        metrics.PROFILES.set(table_size(profiles))
        if events_loop is not None:
            for partition, lag in (await events_loop.lag()).items():
                labelled(metrics.CONSUMER_LAG, topics.events, str(partition)).set(lag)
        consumer: Any = app.consumer
        for tp in consumer.assignment():
            read = faust_internals.read_offset(consumer, tp)
            highwater = consumer.highwater(tp)
            if highwater is not None:
                lag = highwater - (read + 1 if read is not None else 0)
                labelled(metrics.CONSUMER_LAG, tp.topic, str(tp.partition)).set(max(0, lag))

    add_ops_pages(app)
    add_profile_pages(app, profiles=profiles, local_items=profiles.items)
    app.conf.retarget_campaigns = campaigns  # for introspection in tests
    app.conf.retarget_processor = processor
    app.conf.retarget_consent_modes = modes
    return app
