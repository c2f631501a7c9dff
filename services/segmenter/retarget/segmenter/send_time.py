"""Send-time optimisation: when, after a campaign's wait, this person is likeliest to read. Pure.

Learning: each human open or click of our emails (attribution.record_touch decides what is
one: machine opens and clicks never count) adds one to the profile's 24-bucket histogram of
local hours — the profile's time zone when known, else the workspace's. The histogram stays
small: when its total reaches `HISTOGRAM_CAP` every bucket is halved (older habits fade,
newer ones weigh more), so a profile holds at most 24 small numbers.

Deciding: the posterior weight of hour h is `count[h] + PRIOR_STRENGTH * prior[h]` (additive,
Dirichlet smoothing): a profile with no signal follows the population's curve (`PRIOR`, the
usual shape of email opens: mornings and evenings, little at night); one open at hour H
already outweighs the prior, so each person soon gets their own hour.

`choose_send_time` turns a wait's end into a send time: the best-weighted of the wait's end
itself and the start of every local hour up to `max_delay` after it, skipping quiet hours
(the sender would only postpone a message sent into them; their end is a candidate), the
earliest on a tie — so a person whose best hour is out of reach still gets the best reachable
one, never worse than sending at once. Nothing here reads a clock: the same profile, wait end
and window give the same time, which is what makes a replay or a restart choose it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

HOURS = 24
#: a histogram's total that triggers halving: bounded counts, recent behaviour weighs more
HISTOGRAM_CAP = 32
#: how many observations the population prior is worth (additive smoothing's alpha)
PRIOR_STRENGTH = 2.0
#: the population's share of opens by local hour (sums to 1): a low night, a morning peak
#: at 9-10 and an evening one at 19-20 — the shape email providers' published open-time
#: studies agree on. A workspace with its own evidence can be given its own later.
_PRIOR_WEIGHTS = (
    1, 1, 1, 1, 1, 2, 3, 5, 7, 9, 8, 7,
    7, 6, 6, 6, 6, 6, 7, 8, 8, 6, 4, 2,
)  # fmt: skip
PRIOR: tuple[float, ...] = tuple(w / sum(_PRIOR_WEIGHTS) for w in _PRIOR_WEIGHTS)


@dataclass(frozen=True)
class SendWindow:
    """A workspace's time zone and quiet hours (local time, may wrap midnight), as the sender
    applies them (services/sender/.../admission.py)."""

    timezone: str = "UTC"
    quiet_start: time | None = None
    quiet_end: time | None = None


def zone(*candidates: str | None) -> ZoneInfo:
    """The first valid IANA zone among the candidates, else UTC (a profile may say anything)."""
    for candidate in candidates:
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def note_engagement(histogram: list[int], at: datetime, tz: ZoneInfo) -> list[int]:
    """The histogram with one more human open or click at `at`, halved when it got full."""
    counts = list(histogram) if len(histogram) == HOURS else [0] * HOURS
    if sum(counts) + 1 > HISTOGRAM_CAP:
        counts = [c // 2 for c in counts]
    counts[at.astimezone(tz).hour] += 1
    return counts


def hour_weights(histogram: list[int]) -> list[float]:
    """Posterior weight of each local hour: the profile's counts smoothed with the prior."""
    counts = histogram if len(histogram) == HOURS else [0] * HOURS
    return [counts[h] + PRIOR_STRENGTH * PRIOR[h] for h in range(HOURS)]


def preferred_hour(histogram: list[int]) -> int:
    """The local hour with the most weight (the earliest on a tie)."""
    weights = hour_weights(histogram)
    return max(range(HOURS), key=lambda h: (weights[h], -h))


def in_quiet_hours(local: time, window: SendWindow) -> bool:
    start, end = window.quiet_start, window.quiet_end
    if start is None or end is None or start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end  # wraps midnight, e.g. 21:00-08:00


def choose_send_time(
    histogram: list[int], wait_end: datetime, max_delay: timedelta, tz: ZoneInfo, window: SendWindow
) -> datetime:
    """The send time for a wait over at `wait_end` (see the module's docstring); in UTC."""
    weights = hour_weights(histogram)
    best: tuple[float, datetime] | None = None
    for at in _candidates(wait_end, max_delay, tz, window):
        local = at.astimezone(tz)
        if in_quiet_hours(local.time().replace(tzinfo=None), window):
            continue
        if best is None or weights[local.hour] > best[0]:  # strictly more: the earliest wins a tie
            best = (weights[local.hour], at)
    return best[1] if best is not None else wait_end.astimezone(UTC)


def _candidates(wait_end: datetime, max_delay: timedelta, tz: ZoneInfo, window: SendWindow) -> list[datetime]:
    """The wait's end, each local hour's start and the quiet hours' end within the bound, in
    time order. Local wall times become UTC through the zone: a time a DST jump skips lands
    after the jump, an hour that repeats counts its first occurrence."""
    start = wait_end.astimezone(UTC)
    bound = start + max_delay
    local_start = start.astimezone(tz)
    found = {start}
    walls = [time(hour) for hour in range(HOURS)]
    if window.quiet_end is not None:
        walls.append(window.quiet_end)
    for day in range(max_delay.days + 2):
        date = local_start.date() + timedelta(days=day)
        for wall in walls:
            at = datetime.combine(date, wall, tzinfo=tz).astimezone(UTC)
            if start < at <= bound:
                found.add(at)
    return sorted(found)


def merge_histograms(mine: list[int], theirs: list[int]) -> list[int]:
    """Two profiles' histograms as one: the larger count of each hour, so merging the same
    source again (a replay) changes nothing; [] when neither has any."""
    if len(theirs) != HOURS:
        return mine
    if len(mine) != HOURS:
        return list(theirs)
    return [max(a, b) for a, b in zip(mine, theirs, strict=True)]
