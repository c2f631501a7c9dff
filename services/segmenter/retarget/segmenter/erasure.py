"""Erasing a person: every key that holds their state, each deleted by the worker owning it.

A person's state lives under several keys, on several partitions:
- the profile, under `workspace:profileId` (and its due entry, same key, table `due`);
- a redirect under each anonymousId or alias merged into it (the profile's `aliases`);
- possibly other profiles that carried the same address (an anonymous visitor who gave
  the address but never logged in).

A request arrives on the privacy topic (`ErasureRequested`, one record per key the
requester named) and cascades over the internal profile-events topic: a profile asks its
redirects to erase, and asks every partition to look for other profiles with its address.
There is no email index to keep on the hot path (it cost ~30% of the throughput): a
request naming an address is broadcast to every partition, and each partition's owner
scans its own profiles for it — erasures are rare, and a scan takes ~2 s per million
profiles (bench/bench_segmenter_erasure_scan.py). Each step deletes its own keys — faust
writes a tombstone (a null value) to the table's changelog, so compaction drops the old
values — and a step that finds nothing is a no-op, so the cascade ends and a replayed
request is harmless. Cascade records are acknowledged by Kafka before the keys are
deleted, so a crash repeats a step, never loses one. The timer's in-memory heap needs
nothing: a popped entry whose due key is gone is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

import msgspec

from retarget.common.identity import email_digest
from retarget.common.metrics import labelled
from retarget.common.privacy import erasure_key
from retarget.common.schemas import ErasureRequested, encode
from retarget.common.topics import profile_key
from retarget.segmenter import metrics
from retarget.segmenter.state import profile_decoder
from retarget.segmenter.tables import Send, Table

log = logging.getLogger(__name__)
MAX_HOPS = 8
YIELD_EVERY = 2000  # scanned profiles between yields to the event loop

Scan = Callable[[int], Iterable[tuple[bytes, bytes]]]  # partition -> its (key, profile) pairs


class EraseProfile(msgspec.Struct, tag="erase_profile", kw_only=True):
    request_id: str
    follow: bool = True  # a redirect passes it on to its profile (not when that profile sent it)
    look_for_address: bool = True  # also erase other profiles with its address (not from a scan)
    hops: int = 1


class EraseByEmail(msgspec.Struct, tag="erase_by_email", kw_only=True):
    """Sent to one partition: erase the profiles there whose address hashes to `email_hash`."""

    request_id: str
    workspace_id: str
    email_hash: str  # sha256 hex of the normalised address
    partition: int


class _Addressed(msgspec.Struct):
    """The two fields a scan needs, decoded without the rest of the profile."""

    workspace_id: str
    email: str | None = None


Internal = EraseProfile | EraseByEmail
_addressed = msgspec.json.Decoder(_Addressed)


class Eraser:
    def __init__(self, *, profiles: Table, due: Table, send: Send, scan: Scan, partitions: int) -> None:
        self.profiles, self.due, self.send = profiles, due, send
        self.scan, self.partitions = scan, partitions

    async def on_request(self, key: bytes, request: ErasureRequested) -> None:
        """A record of the privacy topic: the profile under `key`, or every profile with an address."""
        log.info("erasure requested", extra={"request_id": request.request_id})
        if request.profile_id is not None:
            await self.erase_profile(key, EraseProfile(request_id=request.request_id, hops=0))
        elif request.email_hash:
            await self.broadcast(request.request_id, request.workspace_id, request.email_hash)

    async def erase_profile(self, key: bytes, record: EraseProfile) -> None:
        raw = self.profiles.get(key)
        if raw is not None:
            profile = profile_decoder.decode(raw)
            ws, hops = profile.workspace_id, record.hops + 1
            if hops > MAX_HOPS:
                log.warning("erasure cascade cut short", extra={"request_id": record.request_id})
            elif profile.merged_into:
                if record.follow:
                    forward = EraseProfile(request_id=record.request_id, hops=hops)
                    await self._pass_on(profile_key(ws, profile.merged_into), forward)
            else:
                for alias in profile.aliases:
                    redirect = EraseProfile(request_id=record.request_id, follow=False, hops=hops)
                    await self._pass_on(profile_key(ws, alias), redirect)
                if profile.email and record.look_for_address:
                    await self.broadcast(record.request_id, ws, email_digest(profile.email).hex())
            del self.profiles[key]
            labelled(metrics.ERASED, "redirect" if profile.merged_into else "profile").inc()
        if self.due.get(key) is not None:
            del self.due[key]

    async def broadcast(self, request_id: str, workspace_id: str, email_hash: str) -> None:
        """Ask every partition's owner to erase its profiles with this address."""
        key = erasure_key(workspace_id, email_hash)
        for partition in range(self.partitions):
            record = EraseByEmail(
                request_id=request_id, workspace_id=workspace_id, email_hash=email_hash, partition=partition
            )
            await self.send("profile_events", key, encode(record), True, partition)

    async def erase_by_email(self, record: EraseByEmail) -> None:
        """Runs on the owner of `record.partition`, so it may delete that partition's keys."""
        found = await profiles_with_address(
            self.scan(record.partition), record.workspace_id, bytes.fromhex(record.email_hash)
        )
        for key in found:
            step = EraseProfile(request_id=record.request_id, look_for_address=False)
            await self.erase_profile(key, step)

    async def _pass_on(self, key: bytes, record: EraseProfile) -> None:
        await self.send("profile_events", key, encode(record), True, None)


async def profiles_with_address(
    items: Iterable[tuple[bytes, bytes]], workspace_id: str, digest: bytes
) -> list[bytes]:
    """Keys of the live profiles of `workspace_id` whose address hashes to `digest` (a scan)."""
    prefix = f"{workspace_id}:".encode()
    found: list[bytes] = []
    for count, (key, raw) in enumerate(items, 1):
        if count % YIELD_EVERY == 0:
            await asyncio.sleep(0)  # a long scan must not starve the timers and the web server
        if not key.startswith(prefix) or b'"email"' not in raw:
            continue
        profile = _addressed.decode(raw)
        if profile.workspace_id == workspace_id and profile.email and email_digest(profile.email) == digest:
            found.append(key)
    return found


def is_erasure_step(value: bytes) -> bool:
    """An internal record that erases (msgspec writes the tag first): cheap, without decoding."""
    return value.startswith((b'{"type":"erase_profile"', b'{"type":"erase_by_email"'))
