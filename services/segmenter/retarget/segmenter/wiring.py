"""What the worker's pieces (the agent, the events loop, the timer) share: the faust app and
its tables, one producer, one lock, the due schedule, and how a processor and a dead letter
are made. app.py wires them together."""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka.partitioner import DefaultPartitioner

from retarget.common.clock import Clock
from retarget.common.kafka import make_producer
from retarget.common.metrics import DEAD_LETTERS, labelled
from retarget.common.privacy import privacy_topic
from retarget.common.topics import Topics
from retarget.config.applied import report_applied
from retarget.config.follower import ConfigFollower
from retarget.config.records import config_topic
from retarget.segmenter import faust_internals, metrics
from retarget.segmenter.campaign_registry import CampaignRegistry
from retarget.segmenter.dead_letters import MAX_DEAD_LETTER_KEY, dead_letter_record, encode_dead_letter
from retarget.segmenter.fencing import FencedChangelog
from retarget.segmenter.ops import partition_items
from retarget.segmenter.processor import ProfileProcessor, Send, Table
from retarget.segmenter.propensity.serving import PropensityModels
from retarget.segmenter.recording import LazyProducer
from retarget.segmenter.schedule import DueSchedule
from retarget.segmenter.send_windows import SendWindows
from retarget.segmenter.settings import SegmenterSettings
from retarget.segmenter.workspace_modes import ConsentModes

log = logging.getLogger(__name__)


def profile_events_topic_name(prefix: str) -> str:
    """Internal topic of events re-keyed to their known profile and of merge records."""
    return f"{prefix}.profile-events.v1"


def new_faust_app(settings: SegmenterSettings) -> faust.App:
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
        producer_linger=settings.producer_linger_s,
        producer_compression_type="lz4",
        producer_max_batch_size=256 * 1024,
        web_bind=settings.http_host,
        web_host=settings.http_host,
        web_port=settings.web_port,
        web_tables_enabled=False,  # faust's /table pages hand any table's values (personal data) to anyone
        autodiscover=False,
        # keys and values are bytes we encode ourselves (msgspec): faust must not (de)serialise
        key_serializer="raw",
        value_serializer="raw",
    )
    # the changelogs are written in transactions (fencing.py): restore only committed records
    faust_internals.recover_read_committed(app)
    return app


def declare_table(app: faust.App, name: str, settings: SegmenterSettings) -> Any:
    # a table picks "raw" storage only from key_type/value_type bytes (else JSON)
    options: dict[str, Any] = {
        "partitions": settings.topic_partitions,
        "key_type": bytes,
        "value_type": bytes,
    }
    if settings.store.startswith("rocksdb"):
        # a database per table partition, each with its own memtables and cache: bound them
        options["options"] = {
            "write_buffer_size": settings.rocksdb_write_buffer_mb * 2**20,
            "max_write_buffer_number": 2,
            "block_cache_size": settings.rocksdb_block_cache_mb * 2**20,
        }
    return app.Table(name, default=None, **options)


#: the longest key whose partition is cached: ingest's keys are far shorter; a record produced
#: directly may carry up to processor.MAX_KEY_BYTES (64 KiB), and every event's key is looked up
MAX_CACHED_KEY = 512


def key_partitioner(partitions: int) -> Callable[[bytes], int]:
    """The events partition a key lives in, by the producers' (ingest's) partitioner. Cached: the
    timer asks again for the keys it re-arms, the events loop for each event's key (re-routing);
    a long key is hashed each time instead of kept, or 65,536 distinct 64 KiB keys would hold
    4 GiB in the cache."""
    every = list(range(partitions))
    partitioner = DefaultPartitioner()

    def partition(key: bytes) -> int:
        return int(partitioner(key, every, every))

    cached = functools.lru_cache(maxsize=65_536)(partition)

    def partition_of(key: bytes) -> int:
        return cached(key) if len(key) <= MAX_CACHED_KEY else partition(key)

    return partition_of


@dataclass
class Worker:
    settings: SegmenterSettings
    app: faust.App
    clock: Clock
    campaigns: CampaignRegistry
    modes: ConsentModes
    schedule: DueSchedule = field(default_factory=DueSchedule)
    models: PropensityModels = field(default_factory=PropensityModels)  # each workspace's newest
    # set once the change feed was read to its end (wire_config_feed): nothing is consumed before
    config_ready: asyncio.Event = field(default_factory=asyncio.Event)
    # the agent's, the loop's and the timer's batches take turns: each sees the tables as the
    # previous one left them
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # each workspace's time zone and quiet hours for send_time: optimal (send_windows.py)
    send_windows: SendWindows = field(default_factory=SendWindows)

    def __post_init__(self) -> None:
        settings = self.settings
        self.topics = Topics(settings.topic_prefix)
        self.profile_events_name = profile_events_topic_name(settings.topic_prefix)
        self.privacy_name = privacy_topic(settings.topic_prefix)
        DEAD_LETTERS.labels("segmenter")  # the series exists, at 0, from the start
        self.profiles = declare_table(self.app, "profiles", settings)
        self.due = declare_table(self.app, "due", settings)
        # events partition -> the next offset the events loop reads (events_loop.py, recording.py)
        self.positions = declare_table(self.app, "positions", settings)
        linger_ms = int(settings.producer_linger_s * 1000)
        # every record of ours goes out through one producer (recording.py) ...
        self.producer = LazyProducer(
            lambda: make_producer(settings, linger_ms=linger_ms, max_batch_size=256 * 1024)
        )
        # ... the changelog records through a transactional one per events partition (fencing.py)
        self.changelog = FencedChangelog(
            self.app.conf.id,
            lambda tid: make_producer(
                settings, transactional_id=tid, linger_ms=linger_ms, max_batch_size=256 * 1024
            ),
        )
        self._names = {
            "events": self.topics.events,
            "triggers": self.topics.triggers,
            "profile_events": self.profile_events_name,
            "dead_letter": self.topics.dead_letter,
        }
        self.partition_of = key_partitioner(settings.topic_partitions)

    async def produce(self, output: str, key: bytes, value: bytes, wait: bool, partition: int | None) -> Any:
        return await self.producer.send(self._names[output], value, key=key, partition=partition)

    def make_processor(
        self, profiles: Table, due: Table, sends: Send, counts: metrics.BatchCounts
    ) -> ProfileProcessor:
        settings = self.settings
        return ProfileProcessor(
            profiles=profiles,
            due=due,
            send=sends,
            campaigns=self.campaigns.campaigns_for,  # each workspace's, one dict lookup
            clock=self.clock,
            schedule=self.schedule,
            scan=lambda partition: partition_items(self.profiles, partition, settings.topic_partitions),
            partitions=settings.topic_partitions,
            dedupe_window=settings.dedupe_window,
            max_hops=settings.max_forward_hops,
            consent_modes=self.modes,
            windows=settings.attribution_windows(),
            counts=counts,
            send_windows=self.send_windows,
            propensity=self.models,
        )

    async def send_dead_letter(
        self,
        sends: Send,
        topic: str,
        partition: int | None,
        offset: int | None,
        key: Any,
        raw: Any,
        reason: str,
    ) -> None:
        labelled(metrics.EVENTS, "poison").inc()
        letter = dead_letter_record(topic, partition, offset, key, raw, reason, self.clock.now())
        # cut to fit: a letter too large for Kafka would be refused on every replay of its record
        cut_key = key[:MAX_DEAD_LETTER_KEY] if key else key
        await sends("dead_letter", cut_key, encode_dead_letter(letter), False)
        labelled(DEAD_LETTERS, "segmenter").inc()
        log.warning("dead-lettered a record", extra={"reason": reason, "topic": topic})


def campaign_follower(settings: SegmenterSettings) -> ConfigFollower:
    """The change feed's reader for this worker: campaigns, and policies (the global holdout)."""
    topic = config_topic(settings.topic_prefix)
    return ConfigFollower(settings.kafka_bootstrap, topic, kinds=["campaign", "policy"])


def instance_name(settings: SegmenterSettings) -> str:
    """This worker in config_applied: its static membership id, else host and web port."""
    return settings.group_instance_id or f"{socket.gethostname()}:{settings.web_port}"


def wire_config_feed(w: Worker, follower: Any | None) -> None:
    """Campaign records from the change feed (retarget.config.ConfigFollower): read to the end
    before the events loop, the agent and the timer start; followed live after; stopped on
    shutdown. No follower (agent tests): the bundled campaigns only, ready at once."""
    if follower is None:
        w.config_ready.set()
        return
    follower.subscribe(w.campaigns.on_change)

    @w.app.task
    async def follow_config_feed() -> None:
        await follower.start()
        w.campaigns.sweeping = True  # from here on a change re-checks the waits it affects
        w.config_ready.set()
        log.info("campaign records read", extra={"workspaces": len(w.campaigns)})
        # how far this worker applied the feed, for the API's "is my change live" (runs until stopped)
        await report_applied(w.settings.database_url, "segmenter", instance_name(w.settings), follower)

    @w.app.on_before_shutdown.connect  # type: ignore[arg-type]  # mode types handlers as sync
    async def _stop_following(sender: Any, *args: Any, **kwargs: Any) -> None:
        await follower.stop()
