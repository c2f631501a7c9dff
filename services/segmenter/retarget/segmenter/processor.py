"""The segmenter's record handling, with its tables and outputs injected (faust-free, so unit
tests drive it with dicts and a recording sender).

Every record for a key is handled by the worker owning the key's partition, one at a time:
events, internal records (forwards, merges, erasure steps) and erasure requests arrive
co-partitioned; ticks come from that worker's timer. Sends that state depends on — a trigger, a merge record,
an attributed conversion, an erasure step — are awaited until Kafka acknowledged them
before the table write that records them, so a crash can repeat one (same ids,
deduplicated downstream) but never lose one. In the worker the tables and `send` are a
batch's (batching.py): sends leave at once, their acknowledgements are awaited together at
the end of the batch, and only then do the real tables get the batch's writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import msgspec

from retarget.common.clock import Clock
from retarget.common.metrics import labelled
from retarget.common.schemas import ErasureRequested, TrackedEvent, decoder, encode
from retarget.common.workspaces import ConsentMode
from retarget.segmenter import erasure, experiments, identity, metrics
from retarget.segmenter.attribution import Conversion, Windows, attributed_event, campaign_label
from retarget.segmenter.campaigns import CampaignSet
from retarget.segmenter.firing import due_before_event, fire_due, next_due
from retarget.segmenter.identity import Forwarded, MergeRequested, ProfileMerged
from retarget.segmenter.live_changes import follow_current_versions
from retarget.segmenter.merging import merge_into
from retarget.segmenter.propensity.serving import Scorer
from retarget.segmenter.rules import (
    Outcome,
    UnusableEvent,
    apply_event,
    event_time_problem,
    is_duplicate,
    remember,
)
from retarget.segmenter.schedule import DueSchedule
from retarget.segmenter.send_time import SendWindow
from retarget.segmenter.state import Profile, encode_due, profile_decoder
from retarget.segmenter.tables import Send, Table

__all__ = ["CampaignsOf", "Poison", "ProfileProcessor", "Send", "Table", "due_epoch"]

#: a workspace's current campaigns (campaign_registry.CampaignRegistry; one CampaignSet for all in tests)
CampaignsOf = Callable[[str], CampaignSet]

log = logging.getLogger(__name__)
_event_decoder = decoder(TrackedEvent)
_erasure_decoder = decoder(ErasureRequested)
_internal_decoder = msgspec.json.Decoder(identity.Internal | erasure.Internal)


class Poison(Exception):
    """A record that can't be handled at all: it goes to the dead-letter topic with the reason."""


#: the most a profile's changelog record (key and value) may take once an event or a merge
#: changed it: half of Kafka's default limit (1 MiB), so a tick's small additions still fit. A
#: profile over Kafka's limit could never be recorded: the worker would exit and replay its
#: batch for ever; the record that would take it there is dead-lettered instead.
MAX_PROFILE_BYTES = 512 * 1024
#: the longest key a record may have: its profile, redirect and due entry are keyed by it
MAX_KEY_BYTES = 64 * 1024


def _usable_key(key: bytes | None) -> bytes:
    if not key:
        raise Poison("a record without a key (workspace:id)")
    if len(key) > MAX_KEY_BYTES:
        raise Poison(f"a key of {len(key)} bytes, over {MAX_KEY_BYTES}")
    return key


class ProfileProcessor:
    def __init__(
        self,
        *,
        profiles: Table,
        due: Table,
        send: Send,
        campaigns: CampaignSet | CampaignsOf,
        clock: Clock,
        schedule: DueSchedule,
        scan: erasure.Scan = lambda _: (),
        partitions: int = 1,
        dedupe_window: int = 64,
        max_hops: int = 4,
        consent_modes: Callable[[str], ConsentMode] = lambda _: "opt_out",
        windows: Windows | None = None,
        counts: metrics.BatchCounts | None = None,
        send_windows: Callable[[str], SendWindow] = lambda _: SendWindow(),
        propensity: Scorer = lambda profile, at: None,
    ) -> None:
        self.profiles, self.due, self.send = profiles, due, send
        self.campaigns = campaigns
        self.clock, self.schedule = clock, schedule
        self.dedupe_window, self.max_hops = dedupe_window, max_hops
        self.consent_modes, self.windows = consent_modes, windows or Windows()
        self.send_windows = send_windows  # each workspace's time zone and quiet hours (send_time.py)
        self.propensity = propensity  # each workspace's newest model (propensity/serving.py)
        # counted once the batch is recorded (metrics.BatchCounts)
        self.counts = counts or metrics.BatchCounts(immediate=True)
        self.eraser = erasure.Eraser(profiles=profiles, due=due, send=send, scan=scan, partitions=partitions)

    @property
    def campaigns(self) -> CampaignsOf:
        return self.campaigns_of

    @campaigns.setter
    def campaigns(self, campaigns: CampaignSet | CampaignsOf) -> None:
        """One set for every workspace (tests), or each workspace's own (CampaignRegistry)."""
        self.campaigns_of = _same_for_all(campaigns) if isinstance(campaigns, CampaignSet) else campaigns

    # -- records --------------------------------------------------------------------------

    async def on_event(self, key: bytes, value: bytes) -> None:
        """A record of the events topic, keyed workspace:(anonymousId|userId)."""
        key = _usable_key(key)
        try:
            event = _event_decoder.decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.counts.inc(labelled(metrics.EVENTS, "invalid"))
            raise Poison(f"not a TrackedEvent: {exc}") from exc
        time_problem = event_time_problem(event, self.clock.now())
        if time_problem is not None:  # before anything changes: the event is dead-lettered
            self.counts.inc(labelled(metrics.EVENTS, "invalid"))
            raise Poison(time_problem)
        if not key.startswith(f"{event.workspace_id}:".encode()):  # the key places it: another's profile
            self.counts.inc(labelled(metrics.EVENTS, "invalid"))
            raise Poison(f"the key is not of the event's workspace ({event.workspace_id!r})")
        self.counts.observe(
            metrics.EVENT_AGE, max(0.0, self.clock.timestamp() - event.received_at.timestamp())
        )
        visitor = identity.visitor_of(key, event.workspace_id)
        here = self._load(key)
        redirect = here.merged_into if here is not None else None
        canonical = identity.canonical_id(event, visitor, redirect)
        if canonical != visitor:
            if identity.is_live(here) or redirect != canonical:
                await self._merge_away(key, here, event.workspace_id, visitor, canonical)
            target = _key(event.workspace_id, canonical)
            await self.send("profile_events", target, encode(Forwarded(event=event)), False)
            self.counts.inc(labelled(metrics.EVENTS, "forwarded"))
        else:
            await self._apply(key, here, event)
        source = identity.alias_source(event, canonical, visitor)
        if source is not None:
            request = MergeRequested(source=source, into=canonical, at_message_id=event.message_id)
            await self.send("profile_events", _key(event.workspace_id, source), encode(request), True)

    async def on_privacy(self, key: bytes, value: bytes) -> None:
        """A record of the privacy topic: erase the person's state under `key` (erasure.py)."""
        try:
            request = _erasure_decoder.decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise Poison(f"not an ErasureRequested: {exc}") from exc
        await self.eraser.on_request(key, request)

    async def on_internal(self, key: bytes, value: bytes) -> None:
        """A record of profile-events: a forwarded event, a merge, or an erasure step."""
        key = _usable_key(key)
        try:
            record = _internal_decoder.decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise Poison(f"not an internal segmenter record: {exc}") from exc
        if isinstance(record, erasure.EraseProfile):
            await self.eraser.erase_profile(key, record)
            return
        if isinstance(record, erasure.EraseByEmail):
            await self.eraser.erase_by_email(record)
            return
        here = self._load(key)
        if isinstance(record, Forwarded):
            if here is not None and here.merged_into:
                await self._follow(here, record, record.event.workspace_id)
            else:
                await self._apply(key, here, record.event)
        elif isinstance(record, MergeRequested):
            already = here is not None and here.merged_into == record.into
            if record.source != record.into and not already:
                workspace_id = key.decode().partition(":")[0]
                await self._merge_away(key, here, workspace_id, record.source, record.into)
        elif isinstance(record, ProfileMerged):
            if here is not None and here.merged_into:
                await self._follow(here, record, record.profile.workspace_id)
            else:
                await self._merge_in(key, here, record)

    async def on_tick(self, key: bytes, until: datetime | None = None) -> None:
        """The timer found this key due: re-check the profile and fire what is due by `until`
        (the events read so far, watermark.py; default now)."""
        profile = self._load(key)
        if profile is None or profile.merged_into:
            self._store_due(key, None)
            return
        now = self.clock.now()
        campaigns = self.campaigns_of(profile.workspace_id)
        self._count(follow_current_versions(profile, campaigns) or [])
        mode, window = self.consent_modes(profile.workspace_id), self.send_windows(profile.workspace_id)
        result = fire_due(
            profile, campaigns, now, mode, until=until, window=window, propensity=self.propensity
        )
        for trigger in result.triggers:
            # acknowledged before the table write that records it: a crash repeats, never loses
            await self.send("triggers", key, encode(trigger), True)
            metrics.TIMER_LAG.observe(max(0.0, (now - trigger.due_at).total_seconds()))
            log.info(
                "trigger fired",
                extra={"campaign": trigger.campaign, "trigger_id": trigger.trigger_id},
            )
        self._count(result.outcomes, profile.workspace_id)
        self._store(key, profile)

    # -- steps ----------------------------------------------------------------------------

    async def _apply(self, key: bytes, here: Profile | None, event: TrackedEvent) -> None:
        profile = here or _new_profile(key, event.workspace_id)
        if is_duplicate(profile, event.message_id):
            self.counts.inc(labelled(metrics.EVENTS, "duplicate"))
            return
        campaigns = self.campaigns_of(event.workspace_id)
        # the waits as the campaigns' current versions say (edited live), before any decision
        followed = follow_current_versions(profile, campaigns) if profile.pending else None
        if followed is not None:
            self._count(followed)
        cutoff = due_before_event(profile, event, self.clock.now)
        fired = cutoff is not None and await self._fire_due_before(key, profile, cutoff, campaigns)
        # a re-timed or cancelled wait is a change to record, whatever the event does
        fired = fired or followed is not None
        try:
            home_zone = self.send_windows(event.workspace_id).timezone
            applied = apply_event(profile, event, campaigns, self.windows, home_zone=home_zone)
        except UnusableEvent as exc:
            self.counts.inc(labelled(metrics.EVENTS, "unusable"))
            log.warning("skipped an unusable event", extra={"reason": str(exc), "event": event.event})
            if fired:
                self._store(key, profile)  # the waits that fired are gone, whatever the event was
            return
        if here is None:
            self.counts.inc(metrics.PROFILES_CREATED)
        for conversion in applied.conversions:
            await self._record_conversion(key, profile, conversion, campaigns)
        # stored with the profile: an Order Completed always changes it (rules: the cart is cleared)
        arm_orders = experiments.record_order(profile, event, max(self.windows.open, self.windows.click))
        self._count_arm_orders(profile.workspace_id, arm_orders, campaigns)
        if applied.changed or here is None:
            # only events that changed something need remembering: replaying the others is harmless
            remember(profile, event.message_id, self.dedupe_window)
        if applied.changed or here is None or fired:
            self._store(key, profile, checked=True)
        self._count(applied.outcomes)
        self.counts.inc(labelled(metrics.EVENTS, "applied"))

    async def _fire_due_before(
        self, key: bytes, profile: Profile, cutoff: datetime, campaigns: CampaignSet
    ) -> bool:
        """Waits due by an event's own time (`cutoff`, firing.due_before_event) fire before the
        event changes the profile, as the timer would have fired them. Sent as on_tick sends
        them: acknowledged before the table write that records them."""
        now = self.clock.now()
        mode = self.consent_modes(profile.workspace_id)
        window = self.send_windows(profile.workspace_id)
        result = fire_due(
            profile, campaigns, now, mode, until=cutoff, window=window, propensity=self.propensity
        )
        for trigger in result.triggers:
            await self.send("triggers", key, encode(trigger), True)
            metrics.TIMER_LAG.observe(max(0.0, (now - trigger.due_at).total_seconds()))
            log.info(
                "trigger fired before a later event",
                extra={"campaign": trigger.campaign, "trigger_id": trigger.trigger_id},
            )
        self._count(result.outcomes, profile.workspace_id)
        return True

    async def _record_conversion(
        self, key: bytes, profile: Profile, conversion: Conversion, campaigns: CampaignSet
    ) -> None:
        """On record (acknowledged) before the profile write that marks the order counted."""
        event = attributed_event(profile, conversion, self.clock.now())
        await self.send("events", key, encode(event), True)
        campaign = campaign_label(conversion.campaign, campaigns.by_name)
        self.counts.inc(labelled(metrics.CONVERSIONS, profile.workspace_id, campaign))
        self.counts.inc(
            labelled(metrics.REVENUE, profile.workspace_id, campaign, conversion.currency), conversion.revenue
        )
        log.info(
            "purchase attributed", extra={"campaign": conversion.campaign, "touch": conversion.touch.kind}
        )

    async def _merge_away(
        self, key: bytes, here: Profile | None, workspace_id: str, visitor: str, canonical: str
    ) -> None:
        """Send this id's state to `canonical` (acknowledged first), then leave a redirect."""
        if identity.is_live(here):
            assert here is not None
            record = ProfileMerged(source=visitor, profile=here)
            await self.send("profile_events", _key(workspace_id, canonical), encode(record), True)
            self.counts.inc(metrics.MERGES)
            self._count([Outcome("cancelled", name, "merged into known profile") for name in here.pending])
        self._store(key, identity.redirect_to(workspace_id, visitor, canonical))

    async def _merge_in(self, key: bytes, here: Profile | None, record: ProfileMerged) -> None:
        target = here or _new_profile(key, record.profile.workspace_id)
        campaigns = self.campaigns_of(record.profile.workspace_id)
        outcomes = merge_into(target, record.profile, campaigns, window=self.dedupe_window)
        self._count(outcomes + (follow_current_versions(target, campaigns) or []))
        self._store(key, target, checked=True)

    async def _follow(self, here: Profile, record: Forwarded | ProfileMerged, workspace_id: str) -> None:
        """This id was merged away: pass the record on to where it lives now."""
        if record.hops >= self.max_hops:
            raise Poison(f"identity redirects longer than {self.max_hops} hops (a cycle?)")
        assert here.merged_into is not None
        record.hops += 1
        target = _key(workspace_id, here.merged_into)
        await self.send("profile_events", target, encode(record), isinstance(record, ProfileMerged))

    def _count_arm_orders(
        self, workspace_id: str, orders: list[experiments.ArmOrder], campaigns: CampaignSet
    ) -> None:
        for order in orders:
            campaign = campaigns.by_name.get(order.campaign)
            labels = (workspace_id, campaign_label(order.campaign, campaigns.by_name))
            arm = experiments.arm_label(campaign, order.arm)
            if order.converted:
                self.counts.inc(labelled(metrics.ARM_CONVERSIONS, *labels, arm))
            self.counts.inc(labelled(metrics.ARM_REVENUE, *labels, arm, order.currency), order.revenue)
            self.counts.inc(
                labelled(metrics.ARM_REVENUE_SQUARED, *labels, arm, order.currency), order.revenue_squared
            )

    def _count(self, outcomes: list[Outcome], workspace_id: str = "") -> None:
        for o in outcomes:
            if o.kind == "fired":
                self.counts.inc(labelled(metrics.TRIGGERS_FIRED, workspace_id, o.campaign))
            elif o.kind == "assigned":  # o.reason is the arm, one of the loaded campaign's
                self.counts.inc(labelled(metrics.ASSIGNED, workspace_id, o.campaign, o.reason))
            elif o.kind == "cancelled":
                self.counts.inc(labelled(metrics.TRIGGERS_CANCELLED, o.campaign, o.reason))
            elif o.kind == "propensity":
                self.counts.inc(labelled(metrics.PROPENSITY, o.campaign, o.reason))
            else:
                self.counts.inc(labelled(metrics.TRIGGERS_SCHEDULED, o.campaign, o.kind))

    # -- tables ---------------------------------------------------------------------------

    def _load(self, key: bytes) -> Profile | None:
        raw = self.profiles.get(key)
        return profile_decoder.decode(raw) if raw is not None else None

    def _store(self, key: bytes, profile: Profile, *, checked: bool = False) -> None:
        value = msgspec.json.encode(profile)
        if checked and len(key) + len(value) > MAX_PROFILE_BYTES:
            raise Poison(
                f"the profile would take {len(key) + len(value)} bytes, over the {MAX_PROFILE_BYTES} "
                "a changelog record may take"
            )
        self.profiles[key] = value
        self._store_due(key, next_due(profile))

    def _store_due(self, key: bytes, when: datetime | None) -> None:
        wanted = encode_due(when) if when else None
        if self.due.get(key) == wanted:
            return
        if wanted is None:
            del self.due[key]
        else:
            assert when is not None
            self.due[key] = wanted
            self.schedule.push(key, when.timestamp(), wanted)


def _same_for_all(campaigns: CampaignSet) -> CampaignsOf:
    return lambda _workspace_id: campaigns


def due_epoch(value: bytes) -> float:
    return datetime.fromisoformat(value.decode()).timestamp()


def _key(workspace_id: str, profile_id: str) -> bytes:
    return f"{workspace_id}:{profile_id}".encode()


def _new_profile(key: bytes, workspace_id: str) -> Profile:
    return Profile(workspace_id=workspace_id, profile_id=identity.visitor_of(key, workspace_id))
