"""A profile's waits under the campaigns' current versions (campaigns change live: the feed).

A pending wait keeps its entry time; its due time is always entry + the campaign's current
wait, but a shortened wait is never due before the change was written. So a shorter wait fires
at entry + the new wait (at the change when that is past: at once, unless an event stamped
before the change — an order still in a backlog — exits it first) and a longer one later; a campaign the workspace deleted or disabled cancels its waits, counted with the
reason — and they stay cancelled when it comes back. Exits, entries and conditions need
nothing here: they are read from the current version whenever an event arrives or a wait
fires. Pure; the processor calls it before every decision about a profile (an event, a
re-check by the timer, a merge), one pass over the profile's few pending waits.

The due index (`due` table and the timer's heap) only learns a changed due time when the
profile is next handled: for a longer wait that is the old due time (a re-check that fires
nothing and stores the later time); a shorter wait or a removed campaign is re-checked at
once by the timer's sweep of that workspace (`recheck_now`, timer.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from retarget.segmenter.campaigns import CampaignSet
from retarget.segmenter.outcomes import Outcome
from retarget.segmenter.schedule import DueSchedule
from retarget.segmenter.state import Profile


def follow_current_versions(profile: Profile, campaigns: CampaignSet) -> list[Outcome] | None:
    """Re-time the profile's waits to the current waits and cancel those of removed campaigns.
    None when nothing changed (the profile needs no write); else the cancellations."""
    changed = False
    outcomes: list[Outcome] = []
    for name, pending in list(profile.pending.items()):
        campaign = campaigns.by_name.get(name)
        if campaign is None:
            del profile.pending[name]
            outcomes.append(Outcome("cancelled", name, campaigns.removed.get(name, "campaign removed")))
            changed = True
            continue
        if pending.send_time_chosen:
            # the wait is over and its send time chosen (firing.hold_for_send_time): kept, but
            # within the campaign's current bound — an edit that shortens max_delay or sends at
            # once releases a reminder held days ahead (no earlier than the edit itself)
            wait_end = pending.entry_at + campaign.wait
            if campaign.changed_at is not None:  # a wait shortened by an edit ended no earlier
                wait_end = max(wait_end, campaign.changed_at)
            latest = wait_end + (campaign.max_delay or timedelta(0))
            if pending.due_at > latest:
                pending.due_at, changed = latest, True
            continue
        due_at = pending.entry_at + campaign.wait
        if due_at < pending.due_at and campaign.changed_at is not None:
            # shortened by a change: due no earlier than the change itself, so an event stamped
            # before it (an order read after it: a backlog) still decides first, as it would
            # have under the wait it was placed under
            due_at = max(due_at, campaign.changed_at)
        if due_at != pending.due_at:
            pending.due_at = due_at
            changed = True
    return outcomes if changed else None


def recheck_now(
    schedule: DueSchedule, due: Iterable[tuple[bytes, bytes]], workspaces: set[str], now: float
) -> int:
    """Make every `due` entry of these workspaces due `now` (and forget the workspaces): the
    timer then re-checks those profiles a batch at a time. The entries keep their table value,
    so one the profile's next write replaced is dropped as stale (schedule.py)."""
    wanted = {workspace.encode() for workspace in workspaces}
    workspaces.clear()
    count = 0
    for key, value in due:
        # the key is "workspace:profile": a set lookup per ':' (a workspace id may hold one),
        # not a startswith per changed workspace (1,000 of them made a sweep stall the worker)
        colon = key.find(b":")
        while colon != -1:
            if key[:colon] in wanted:
                schedule.push(key, now, value)
                count += 1
                break
            colon = key.find(b":", colon + 1)
    return count
