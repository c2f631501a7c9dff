"""Identity resolution: which profile an event belongs to, and which profiles must merge.

Events arrive keyed by anonymousId (or userId when there is none), so one visitor's events
before and after login share a partition and stay in order. A profile lives under its
canonical id — the userId once known, else the anonymousId — on the co-partitioned
internal topic `profile-events`, keyed `workspace:profileId`:

- an event carrying a userId U under key A (identify or any call after login): A's state
  is sent to U as a merge record, A becomes a redirect to U, and the event is forwarded
  to U. Later events for A alone follow the redirect.
- an alias (previousId P, userId U): a merge request goes to P's partition, where P's state
  is sent to U the same way. Only the owner of a key ever writes it, as faust requires.

Records on `profile-events` are the `Internal` union below, plus erasure.py's steps.
"""

from __future__ import annotations

import msgspec

from retarget.common.schemas import TrackedEvent
from retarget.segmenter.state import Profile


class Forwarded(msgspec.Struct, tag="forward", kw_only=True):
    """An event re-keyed to its canonical profile."""

    event: TrackedEvent
    hops: int = 1


class MergeRequested(msgspec.Struct, tag="merge_request", kw_only=True):
    """Ask the owner of `source` to merge it into `into` (from an alias seen elsewhere)."""

    source: str
    into: str
    at_message_id: str


class ProfileMerged(msgspec.Struct, tag="merged", kw_only=True):
    """The whole state of `source`, to be folded into the record's key."""

    source: str
    profile: Profile
    hops: int = 1


Internal = Forwarded | MergeRequested | ProfileMerged


def visitor_of(key: bytes, workspace_id: str) -> str:
    """The id part of a `workspace:id` key."""
    text = key.decode()
    prefix = f"{workspace_id}:"
    return text[len(prefix) :] if text.startswith(prefix) else text.partition(":")[2]


def canonical_id(event: TrackedEvent, visitor: str, redirect: str | None) -> str:
    """The profile an event keyed `visitor` belongs to: its userId, else where `visitor` points."""
    if event.user_id and event.user_id != visitor:
        return event.user_id
    return redirect or visitor


def alias_source(event: TrackedEvent, canonical: str, visitor: str) -> str | None:
    """The other id an alias folds into the canonical profile, when it lives under another key."""
    if event.type != "alias" or not event.previous_id:
        return None
    if event.previous_id in (canonical, visitor):
        return None
    return event.previous_id


def redirect_to(workspace_id: str, visitor: str, canonical: str) -> Profile:
    """The small record left under a merged id: only where its events go now."""
    return Profile(workspace_id=workspace_id, profile_id=visitor, merged_into=canonical)


def is_live(profile: Profile | None) -> bool:
    """A profile with state worth moving (not absent, not already a redirect)."""
    return profile is not None and profile.merged_into is None
