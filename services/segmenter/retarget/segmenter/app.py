"""The faust application: faust owns the profile tables and the partitions; the events loop,
a faust agent and the wall-clock timer take turns writing them.

Three co-partitioned topics, so every record about a key is handled by the worker that owns
the key's partition: the events topic, read by the events loop (events_loop.py: batches
straight into the tables' stores and changelogs, ~4x faust's own per-record path); the
internal `profile-events` topic (events re-keyed to their known profile, merge records —
identity.py) and `privacy` (erasure requests, erasure.py), read by a faust agent.

Records are taken in batches (batching.py): each touched key is written once per batch,
recorded in one order (recording.py). One batch at a time (one lock), whoever's it is.

The pieces: wiring.py (what they share: tables, producer, lock, schedule), agent_wiring.py,
loop_wiring.py, timer.py; this module puts them together with the ops pages and gauges.

The wall-clock timer pops due keys from an in-memory heap (schedule.py) mirroring the
durable `due` table of the partitions this worker owns, and handles them itself, as a batch
of ticks between the other batches: each profile is re-checked (an exit event may have
arrived) and its trigger emitted. The ticks used to be records on an internal topic, read
back by the agent; they then waited behind any backlog of events, so a burst of traffic
made every due trigger late by the time the burst took. Faust's windowed tables keep expiry
only in memory, so they are not used for this.
"""

from __future__ import annotations

from typing import Any

import faust

from retarget.common.clock import Clock, SystemClock
from retarget.common.metrics import labelled
from retarget.common.privacy import privacy_topic
from retarget.segmenter import faust_internals, metrics
from retarget.segmenter.agent_wiring import wire_agent
from retarget.segmenter.campaign_registry import CampaignRegistry
from retarget.segmenter.campaigns import CampaignSet, load_campaigns, read_campaign_files, with_waits
from retarget.segmenter.loop_wiring import LoopSlot, wire_events_loop
from retarget.segmenter.ops import add_ops_pages, table_size
from retarget.segmenter.processor import Send
from retarget.segmenter.profiles_api import add_profile_pages
from retarget.segmenter.propensity.serving import PgModels, PropensityModels
from retarget.segmenter.restore import restore_partitions
from retarget.segmenter.send_windows import PgSendWindows, SendWindows, parse_quiet_hours
from retarget.segmenter.settings import SegmenterSettings
from retarget.segmenter.timer import wire_timer
from retarget.segmenter.wiring import (
    Worker,
    campaign_follower,
    new_faust_app,
    profile_events_topic_name,
    wire_config_feed,
)
from retarget.segmenter.workspace_modes import ConsentModes, PgConsentModes

__all__ = ["campaigns_from", "create_app", "internal_topics", "profile_events_topic_name", "registry_from"]


def internal_topics(prefix: str) -> list[str]:
    """The topics the worker creates beside the shared ones (privacy: written by ingest and the CLI)."""
    return [profile_events_topic_name(prefix), privacy_topic(prefix)]


def campaigns_from(settings: SegmenterSettings) -> CampaignSet:
    """The bundled campaigns every workspace inherits, waits scaled and overridden."""
    return load_campaigns(settings.campaigns_dir, wait_scale=settings.wait_scale, waits=_waits(settings))


def registry_from(settings: SegmenterSettings) -> CampaignRegistry:
    """The bundled campaigns, ready for the workspaces' own (CampaignError if a file is wrong)."""
    files = read_campaign_files(settings.campaigns_dir)
    with_waits(files, wait_scale=settings.wait_scale, waits=_waits(settings))  # names every override
    return CampaignRegistry(files, wait_scale=settings.wait_scale, waits=_waits(settings))


def _waits(settings: SegmenterSettings) -> dict[str, str | float]:
    waits: dict[str, str | float] = dict(settings.campaign_waits)
    if settings.cart_wait_s is not None:
        waits.setdefault("abandoned_cart", settings.cart_wait_s)
    return waits


def create_app(
    settings: SegmenterSettings,
    *,
    campaigns: CampaignRegistry | None = None,
    clock: Clock | None = None,
    send: Send | None = None,
    consent_modes: ConsentModes | None = None,
    follower: Any | None = None,
    propensity_models: PropensityModels | None = None,
) -> faust.App:
    """The worker's app; `send` replaces producing to Kafka in agent tests (no events loop, no
    change feed). `follower`: the change feed's reader (default: a ConfigFollower of campaigns)."""
    modes = consent_modes or ConsentModes(
        PgConsentModes(settings.database_url, timeout_s=settings.consent_db_timeout_s)
    )
    w = Worker(
        settings,
        new_faust_app(settings),
        clock or SystemClock(),
        campaigns if campaigns is not None else registry_from(settings),
        modes,
        models=propensity_models
        or PropensityModels(PgModels(settings.database_url, timeout_s=settings.consent_db_timeout_s)),
    )
    quiet = parse_quiet_hours(settings.quiet_hours)
    fetch = PgSendWindows(settings.database_url, timeout_s=settings.consent_db_timeout_s, default_quiet=quiet)
    # agent tests (`send`) and tests with their own modes run no refresh: nothing to wait for
    injected = send is not None or consent_modes is not None
    w.send_windows = SendWindows(None if injected else fetch, default_quiet=quiet)
    wire_config_feed(w, None if send is not None else follower or campaign_follower(settings))
    if settings.store.startswith("rocksdb"):  # a full restore in batches, not record by record
        add_batched_restore(w)
    agent = wire_agent(w, send)
    slot = wire_events_loop(w, enabled=send is None)
    wire_timer(w, agent, slot)
    add_consent_refresh(w)
    add_propensity_refresh(w)
    add_gauges(w, slot)
    add_ops_pages(w.app, config_ready=w.config_ready.is_set, events_read=lambda: _events_read(slot))
    add_profile_pages(w.app, profiles=w.profiles, local_items=w.profiles.items)
    w.app.conf.retarget_campaigns = w.campaigns  # for introspection in tests
    w.app.conf.retarget_processor = agent.processor
    w.app.conf.retarget_consent_modes = modes
    w.app.conf.retarget_propensity_models = w.models
    return w.app


def add_batched_restore(w: Worker) -> None:
    budget_s = 0.5 * w.app.conf.broker_request_timeout  # faust gives up on the step after all of it

    async def restore(tables: dict[Any, Any], offsets: Any, highwaters: dict[Any, int]) -> None:
        await restore_partitions(w.settings, tables, offsets, highwaters, budget_s)

    faust_internals.before_recovery_reads(w.app, restore)


def add_consent_refresh(w: Worker) -> None:
    @w.app.task
    async def load_consent_modes() -> None:
        await w.send_windows.refresh()  # before the modes: the timer waits for those
        await w.modes.refresh()
        metrics.CONSENT_MODES.set(len(w.modes))

    @w.app.timer(interval=w.settings.consent_refresh_s)
    async def reload_consent_modes() -> None:
        await w.send_windows.refresh()
        await w.modes.refresh()
        metrics.CONSENT_MODES.set(len(w.modes))


def add_propensity_refresh(w: Worker) -> None:
    """Each workspace's newest model, reloaded on a timer: a new version scores without a restart."""

    @w.app.task
    async def load_propensity_models() -> None:
        await w.models.refresh()
        metrics.PROPENSITY_MODELS.set(len(w.models))

    @w.app.timer(interval=w.settings.propensity_refresh_s)
    async def reload_propensity_models() -> None:
        await w.models.refresh()
        metrics.PROPENSITY_MODELS.set(len(w.models))


def add_gauges(w: Worker, slot: LoopSlot) -> None:
    @w.app.timer(interval=5.0)
    async def gauges() -> None:
        metrics.PROFILES.set(table_size(w.profiles))
        if slot.loop is not None:
            for partition, lag in (await slot.loop.lag()).items():
                labelled(metrics.CONSUMER_LAG, w.topics.events, str(partition)).set(lag)
        consumer: Any = w.app.consumer
        for tp in consumer.assignment():
            read = faust_internals.read_offset(consumer, tp)
            highwater = consumer.highwater(tp)
            if highwater is not None:
                lag = highwater - (read + 1 if read is not None else 0)
                labelled(metrics.CONSUMER_LAG, tp.topic, str(tp.partition)).set(max(0, lag))


def _events_read(slot: LoopSlot) -> list[tuple[str, int]]:
    loop = slot.loop
    return [(loop.events_topic, p) for p in sorted(loop.assigned)] if loop is not None else []
