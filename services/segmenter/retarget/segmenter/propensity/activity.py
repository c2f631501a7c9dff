"""A profile's activity counts, per UTC day: what the propensity features are computed from.

Kept on the profile by the segmenter's rules (rules.apply_event) and rebuilt by training from
the same events through the same function, so a feature means the same in both. Bounded: the
last ACTIVITY_DAYS days that had activity, one small array each.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from retarget.common.schemas import TrackedEvent
from retarget.segmenter.attribution import from_our_links
from retarget.segmenter.state import Activity, DayTally, Profile

ACTIVITY_DAYS = 35  # the longest feature window (30 d) and a margin for late events
#: a visitor's event this long after their previous one starts a new session (GA's rule)
SESSION_GAP = timedelta(minutes=30)
COUNTED_TYPES = ("track", "page", "screen")
_FIELD_OF_EVENT = {
    "Product Viewed": "views",
    "Product Added": "adds",
    "Order Completed": "orders",
    "Email Opened": "opens",
    "Email Link Clicked": "clicks",
}
_MACHINE_FLAGS = {"opens": "machine_open", "clicks": "machine_click"}


def note_activity(profile: Profile, event: TrackedEvent) -> bool:
    """Counts the event into its day; True when the profile changed. Idempotence is the
    caller's: a changed profile remembers the event's messageId, so a replay is a duplicate."""
    if event.type not in COUNTED_TYPES:
        return False
    activity = profile.activity or Activity()
    profile.activity = activity
    at = event.timestamp
    tally = _tally_of(activity, at)
    if tally is None:
        return False  # older than every day kept: too old to change a feature
    tally.events += 1
    if activity.last_at is None or at - activity.last_at > SESSION_GAP:
        tally.sessions += 1
    field = _FIELD_OF_EVENT.get(event.event or "") if event.type == "track" else None
    if field in _MACHINE_FLAGS and not from_our_links(event):
        field = None  # a client's "Email Opened" is its word, not engagement with our mail
    if field is not None and event.properties.get(_MACHINE_FLAGS.get(field, "")) is not True:
        setattr(tally, field, getattr(tally, field) + 1)
        if field == "orders":
            tally.revenue += _revenue(event.properties)
            activity.orders += 1
            activity.last_order_at = _latest(activity.last_order_at, at)
    activity.last_at = _latest(activity.last_at, at)
    activity.first_at = at if activity.first_at is None or at < activity.first_at else activity.first_at
    return True


def merge_activity(target: Profile, source: Profile) -> None:
    """An anonymous profile's counts join the known one's, once (a replayed merge record finds
    the source among the target's aliases and adds nothing)."""
    if source.activity is None or source.profile_id in target.aliases:
        return
    mine = target.activity or Activity()
    days = {t.day: t for t in mine.days}
    for theirs in source.activity.days:
        here = days.setdefault(theirs.day, DayTally(day=theirs.day))
        for name in DayTally.__struct_fields__[1:]:
            setattr(here, name, getattr(here, name) + getattr(theirs, name))
    mine.days = sorted(days.values(), key=lambda t: t.day)[-ACTIVITY_DAYS:]
    mine.orders += source.activity.orders
    mine.last_at = _latest(mine.last_at, source.activity.last_at)
    mine.last_order_at = _latest(mine.last_order_at, source.activity.last_order_at)
    firsts = [t for t in (mine.first_at, source.activity.first_at) if t is not None]
    mine.first_at = min(firsts) if firsts else None
    target.activity = mine


def _tally_of(activity: Activity, at: datetime) -> DayTally | None:
    day = utc_day(at)
    days = activity.days
    if days and days[-1].day == day:  # nearly every event: today's tally, at the end
        return days[-1]
    for tally in days:
        if tally.day == day:
            return tally
    if len(days) >= ACTIVITY_DAYS and day < days[0].day:
        return None
    tally = DayTally(day=day)
    activity.days = sorted([*days, tally], key=lambda t: t.day)[-ACTIVITY_DAYS:]
    return tally


def utc_day(at: datetime) -> int:
    """The proleptic ordinal of `at`'s UTC date (a naive time is taken as UTC)."""
    offset = at.utcoffset()
    return (at - offset).toordinal() if offset is not None else at.toordinal()


def _revenue(props: dict[str, object]) -> float:
    value = props.get("revenue", props.get("total"))
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 and value < 1e12:
        return float(value)
    return 0.0


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)
