"""The faust application: one agent owns the profiles; a wall-clock timer wakes it for due triggers.

Why the timer doesn't fire triggers itself: table writes must happen in the agent that owns
the key's partition, so changelogs stay consistent. The timer only looks at the `due` table
(durable, one small entry per profile with something pending) for partitions this worker
owns, and sends a tick keyed by the profile to an internal, co-partitioned topic. The agent
reads ticks and events from the same partition in order, re-checks the profile (an exit
event may have arrived) and emits the trigger. Faust's windowed tables keep expiry only in
memory, so they are not used for this (see ../shared/DESIGN.md).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

import faust
import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from retarget.common.clock import Clock, SystemClock
from retarget.common.schemas import TrackedEvent, decoder, encode
from retarget.common.topics import Topics
from retarget.segmenter import rules
from retarget.segmenter.campaigns import Campaign, builtin_campaigns
from retarget.segmenter.metrics import EVENTS, PROCESSING, TIMER_LAG, TRIGGERS_FIRED
from retarget.segmenter.settings import SegmenterSettings
from retarget.segmenter.state import Profile, profile_decoder

log = logging.getLogger(__name__)

_event_decoder = decoder(TrackedEvent)
_RESIGNAL_AFTER_S = 5.0  # a tick not acted upon by then (lost in a rebalance) is sent again


def ticks_topic_name(prefix: str) -> str:
    """Internal topic of the timer's wake-up records; co-partitioned with the events topic."""
    return f"{prefix}.segmenter-ticks.v1"


def create_app(
    settings: SegmenterSettings, *, campaigns: list[Campaign] | None = None, clock: Clock | None = None
) -> faust.App:
    clock = clock or SystemClock()
    campaigns = campaigns if campaigns is not None else builtin_campaigns(settings.cart_wait_s)
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
        producer_acks=-1,
        web_bind=settings.http_host,
        web_host=settings.http_host,
        web_port=settings.web_port,
        autodiscover=False,
        # keys and values are bytes we encode ourselves (msgspec): faust must not (de)serialise
        key_serializer="raw",
        value_serializer="raw",
    )
    events_topic = app.topic(topics.events)
    ticks_topic = app.topic(ticks_topic_name(settings.topic_prefix))
    triggers_topic = app.topic(topics.triggers)
    # a table picks "raw" storage only from key_type/value_type bytes (else JSON)
    table_options: dict[str, Any] = {
        "partitions": settings.topic_partitions,
        "key_type": bytes,
        "value_type": bytes,
    }
    profiles = app.Table("profiles", default=None, **table_options)
    due = app.Table("due", default=None, **table_options)
    signalled: dict[bytes, tuple[bytes, float]] = {}  # key -> (due value, monotonic time sent)

    def load(key: bytes) -> Profile:
        raw = profiles.get(key)
        if raw is not None:
            return profile_decoder.decode(raw)
        workspace_id, _, visitor = key.decode().partition(":")
        return Profile(workspace_id=workspace_id, profile_id=visitor)

    async def store(key: bytes, profile: Profile) -> None:
        profiles[key] = msgspec.json.encode(profile)
        when = rules.next_due(profile)
        wanted = when.isoformat().encode() if when else None
        current = due.get(key)
        if current != wanted:
            if wanted is None:
                del due[key]
            else:
                due[key] = wanted

    async def on_event(key: bytes, value: bytes) -> None:
        try:
            event = _event_decoder.decode(value)
        except msgspec.DecodeError as exc:
            EVENTS.labels("undecodable").inc()
            log.warning("skipped an undecodable event", extra={"reason": str(exc)})
            return
        profile = load(key)
        if rules.is_duplicate(profile, event, settings.dedupe_window):
            EVENTS.labels("duplicate").inc()
            return
        try:
            rules.apply_event(profile, event, campaigns)
        except rules.UnusableEvent as exc:
            EVENTS.labels("unusable").inc()
            log.warning("skipped an unusable event", extra={"reason": str(exc), "event": event.event})
            return
        await store(key, profile)
        EVENTS.labels("applied").inc()

    async def on_tick(key: bytes) -> None:
        signalled.pop(key, None)
        profile = load(key)
        now = clock.now()
        for trigger in rules.fire_due(profile, campaigns, now):
            await triggers_topic.send(key=key, value=encode(trigger))
            TRIGGERS_FIRED.labels(trigger.workspace_id, trigger.campaign).inc()
            TIMER_LAG.observe((now - trigger.due_at).total_seconds())
            log.info("trigger fired", extra={"campaign": trigger.campaign, "trigger_id": trigger.trigger_id})
        await store(key, profile)

    @app.agent(app.topic(topics.events, ticks_topic.get_topic_name()))
    async def profiles_agent(stream: Any) -> None:
        async for event in stream.events():
            started = time.perf_counter()
            if event.message.topic == events_topic.get_topic_name():
                await on_event(event.key, event.value)
            else:
                await on_tick(event.key)
            PROCESSING.observe(time.perf_counter() - started)

    @app.timer(interval=settings.timer_interval_s)
    async def find_due() -> None:
        # while partitions move or tables recover, the local view of `due` is incomplete
        if app.rebalancing or getattr(app, "in_recovery", False):
            return
        now_iso = clock.now().isoformat().encode()
        mono = time.monotonic()
        for key, when in list(due.items()):
            if when is None or when > now_iso:  # ISO-8601 UTC strings sort like the times they name
                continue
            previous = signalled.get(key)
            if previous and previous[0] == when and mono - previous[1] < _RESIGNAL_AFTER_S:
                continue
            signalled[key] = (when, mono)
            await ticks_topic.send(key=key, value=b"tick")

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        problems = {}
        if app.rebalancing:
            problems["kafka"] = "rebalancing"
        if getattr(app, "in_recovery", False):
            problems["tables"] = "recovering from changelog"
        return web.json({"ready": not problems, "problems": problems}, status=503 if problems else 200)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # aiohttp wants the charset outside content_type; Prometheus text is UTF-8 by definition
        content_type = CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4"
        return web.bytes(generate_latest(REGISTRY), content_type=content_type)

    app.conf.retarget_campaigns = campaigns  # for introspection in tests
    return app


def parse_due(value: bytes) -> datetime:
    return datetime.fromisoformat(value.decode())
