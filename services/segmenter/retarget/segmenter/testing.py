"""Fakes for the segmenter's unit tests: dict tables and an in-memory bus in place of Kafka.

`Harness` drives a real ProfileProcessor: what it sends to profile-events is delivered
back to it (as the co-partitioned topic would), triggers are collected, and `run_timer`
plays the wall-clock timer against the same schedule the faust app uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import count
from typing import Any

import msgspec

from retarget.common.schemas import ErasureRequested, TrackedEvent, TriggerFired, decoder, encode
from retarget.common.testing import FakeClock
from retarget.common.topics import visitor_key
from retarget.common.workspaces import ConsentMode
from retarget.config.records import ConfigChange, Kind
from retarget.segmenter.attribution import Windows
from retarget.segmenter.campaigns import CampaignSet
from retarget.segmenter.processor import CampaignsOf, ProfileProcessor
from retarget.segmenter.propensity.serving import Scorer
from retarget.segmenter.schedule import DueSchedule
from retarget.segmenter.send_time import SendWindow
from retarget.segmenter.state import Profile, profile_decoder

_trigger_decoder = decoder(TriggerFired)
_event_decoder = decoder(TrackedEvent)


class FakeTable(dict[bytes, bytes]):
    """A faust table's get / set / delete on a dict."""


@dataclass
class Harness:
    campaigns: CampaignSet | CampaignsOf  # one set for every workspace, or a CampaignRegistry
    clock: FakeClock = field(default_factory=FakeClock)
    dedupe_window: int = 64
    profiles: FakeTable = field(default_factory=FakeTable)
    due: FakeTable = field(default_factory=FakeTable)
    schedule: DueSchedule = field(default_factory=DueSchedule)
    consent_modes: dict[str, ConsentMode] = field(default_factory=dict)  # workspace -> mode (else opt_out)
    windows: Windows = field(default_factory=Windows)
    send_windows: dict[str, SendWindow] = field(default_factory=dict)  # workspace -> zone, quiet hours
    propensity: Scorer = lambda profile, at: None  # no model (propensity/serving.py)
    triggers: list[TriggerFired] = field(default_factory=list)
    published: list[TrackedEvent] = field(default_factory=list)  # what went to the events topic
    internal: list[tuple[bytes, bytes]] = field(default_factory=list)  # profile-events backlog
    acked: list[str] = field(default_factory=list)  # outputs sent with wait=True, in order

    def __post_init__(self) -> None:
        self.schedule.dirty = False
        self.processor = ProfileProcessor(
            profiles=self.profiles,
            due=self.due,
            send=self._send,
            campaigns=self.campaigns,
            clock=self.clock,
            schedule=self.schedule,
            scan=lambda _: list(self.profiles.items()),  # one partition holds every key here
            dedupe_window=self.dedupe_window,
            consent_modes=lambda ws: self.consent_modes.get(ws, "opt_out"),
            windows=self.windows,
            send_windows=lambda ws: self.send_windows.get(ws, SendWindow()),
            propensity=lambda profile, at: self.propensity(profile, at),  # swappable mid-test
        )

    async def _send(
        self, output: str, key: bytes, value: bytes, wait: bool, partition: int | None = None
    ) -> None:
        if wait:
            self.acked.append(output)
        if output == "triggers":
            self.triggers.append(_trigger_decoder.decode(value))
        elif output == "events":
            self.published.append(_event_decoder.decode(value))
        else:
            self.internal.append((key, value))

    async def send(self, event: TrackedEvent, *, deliver: bool = True) -> None:
        """An event from ingest, keyed as ingest keys it; then the internal records it caused."""
        key = visitor_key(event.workspace_id, event.user_id, event.anonymous_id)
        await self.processor.on_event(key, encode(event))
        if deliver:
            await self.deliver()

    async def erase(self, request: ErasureRequested, key: bytes) -> None:
        """A record of the privacy topic, then the cascade it causes."""
        await self.processor.on_privacy(key, encode(request))
        await self.deliver()

    async def deliver(self) -> None:
        while self.internal:
            key, value = self.internal.pop(0)
            await self.processor.on_internal(key, value)

    async def run_timer(self) -> list[TriggerFired]:
        """One timer pass: tick every due key (delivered at once), return what fired."""
        before = len(self.triggers)
        for key in self.schedule.take_due(self.clock.timestamp(), self.due.get):
            await self.processor.on_tick(key)
            await self.deliver()
        return self.triggers[before:]

    def profile(self, workspace_id: str, profile_id: str) -> Profile | None:
        raw = self.profiles.get(f"{workspace_id}:{profile_id}".encode())
        return profile_decoder.decode(raw) if raw is not None else None


def track(
    event_name: str,
    at: datetime,
    /,
    *,
    mid: str,
    anonymous_id: str | None = "anon-1",
    user_id: str | None = None,
    workspace_id: str = "ws",
    **props: Any,
) -> TrackedEvent:
    return _event("track", at, mid, anonymous_id, user_id, workspace_id, event=event_name, properties=props)


def identify(
    at: datetime,
    /,
    *,
    mid: str,
    anonymous_id: str | None = "anon-1",
    user_id: str | None = None,
    workspace_id: str = "ws",
    **traits: Any,
) -> TrackedEvent:
    return _event("identify", at, mid, anonymous_id, user_id, workspace_id, traits=traits)


def _event(
    kind: Any,
    at: datetime,
    mid: str,
    anonymous_id: str | None,
    user_id: str | None,
    workspace_id: str,
    **fields: Any,
) -> TrackedEvent:
    return TrackedEvent(
        workspace_id=workspace_id,
        type=kind,
        message_id=mid,
        timestamp=at,
        received_at=at,
        anonymous_id=anonymous_id,
        user_id=user_id,
        **fields,
    )


def rocksdb_tables(datadir: str, *names: str, partitions: int = 4) -> list[Any]:
    """Faust tables on faust's real RocksDB store in `datadir` (no broker is contacted): for
    tests of code that writes the stores itself (recording.py)."""
    import faust

    app = faust.App(
        "t", broker="kafka://127.0.0.1:1", store="rocksdb://", datadir=datadir,
        key_serializer="raw", value_serializer="raw", autodiscover=False,
    )  # fmt: skip
    return [
        app.Table(name, default=None, partitions=partitions, key_type=bytes, value_type=bytes)
        for name in names
    ]


_versions = count(1)
_CHANGED_AT = datetime(2026, 1, 1, tzinfo=UTC)


def campaign_record(
    workspace_id: str,
    name: str,
    body: dict[str, Any],
    *,
    kind: Kind = "campaign",
    changed_at: datetime = _CHANGED_AT,
) -> ConfigChange:
    """A workspace's campaign as the API would publish it: a newer version each call."""
    return ConfigChange(workspace_id, kind, name, next(_versions), False, body, "test", changed_at)


def deleted_record(workspace_id: str, name: str) -> ConfigChange:
    return ConfigChange(workspace_id, "campaign", name, next(_versions), True, None, "test", _CHANGED_AT)


def from_links(event: TrackedEvent) -> TrackedEvent:
    """The event as ingest's tracking links publish it (`origin` "link"): only those are touches."""
    return msgspec.structs.replace(event, origin="link")
