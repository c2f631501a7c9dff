"""What the segmenter remembers about a visitor, stored as msgspec JSON in faust tables.

Times are event times (the event's own timestamp), so merging two profiles or replaying
late events gives the same answer whatever order Kafka delivered them in. Every list is
bounded, so a profile stays small however busy the visitor is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from retarget.common.schemas import CartLine


class Pending(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A campaign waiting to fire for a profile: the durable due-trigger entry."""

    campaign: str
    due_at: datetime
    entry_message_id: str
    entry_at: datetime  # the entry event that set due_at
    started_at: datetime  # the first entry event of this wait (kept when a new entry restarts it)
    snapshot: dict[str, Any] = {}  # what the template needs from the entry event (order, trial)
    # the wait is over and due_at is the send time chosen for it (send_time.py): never re-timed
    send_time_chosen: bool = False


class CartItem(msgspec.Struct, kw_only=True):
    line: CartLine
    added_at: datetime


class Viewed(msgspec.Struct, kw_only=True, omit_defaults=True):
    product_id: str
    at: datetime
    name: str | None = None
    price: float | None = None
    currency: str | None = None
    url: str | None = None
    image_url: str | None = None


class Occurrence(msgspec.Struct, array_like=True):
    """One entry event counted by a window aggregate."""

    at: datetime
    message_id: str
    group: str = ""


class Touch(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A person opening or clicking a campaign's email: what a later purchase is attributed to."""

    campaign: str
    kind: str  # "open" | "click"
    at: datetime
    message_id: str = ""  # the email's message id (from the tracking link)


class Assignment(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A campaign fired for the profile (sent or held out): the experiment's unit (experiments.py)."""

    arm: str  # a variant's name, "default" or "holdout"
    at: datetime  # the due time it fired at: orders within the window after it count for the arm
    revenue: float = 0.0  # of the orders counted for this assignment so far
    orders: list[str] = []  # their order ids: an order counts once


class DayTally(msgspec.Struct, array_like=True):
    """One UTC day of a visitor's activity, what the propensity features count (propensity/)."""

    day: int  # the UTC date's proleptic ordinal
    events: int = 0
    sessions: int = 0
    views: int = 0
    adds: int = 0
    orders: int = 0
    opens: int = 0  # human only: privacy-proxy opens and link-scanner clicks are not counted
    clicks: int = 0
    revenue: float = 0.0


class Activity(msgspec.Struct, kw_only=True, omit_defaults=True):
    days: list[DayTally] = []  # oldest first, the last ACTIVITY_DAYS days with activity
    first_at: datetime | None = None
    last_at: datetime | None = None  # the latest event's own time
    orders: int = 0  # all time, beyond the days kept
    last_order_at: datetime | None = None


class Profile(msgspec.Struct, kw_only=True, omit_defaults=True):
    workspace_id: str
    profile_id: str
    merged_into: str | None = None  # set: this id now belongs to that profile; events go there
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    locale: str | None = None
    timezone: str | None = None
    consent: bool | None = None  # marketing email: True opted in, False refused, None unknown
    cart: dict[str, CartItem] = {}
    cart_cleared_at: datetime | None = None
    viewed: list[Viewed] = []  # newest first, one per product
    pending: dict[str, Pending] = {}  # by campaign
    occurrences: dict[str, list[Occurrence]] = {}  # window aggregates, by campaign
    last_exit: dict[str, datetime] = {}  # by campaign: the latest exit event's time
    last_fired: dict[str, datetime] = {}  # by campaign: for the re-entry cooldown
    recent_message_ids: list[str] = []  # newest last; duplicates inside this window are ignored
    aliases: list[str] = []  # other ids redirected here (anonymousIds, aliases): erased with it
    touches: list[Touch] = []  # human opens and clicks of our emails, oldest first (attribution)
    attributed_orders: list[str] = []  # order ids already attributed: a purchase counts once
    blocked_campaigns: list[str] = []  # campaigns the person unsubscribed from (scope 'campaign')
    engaged_hours: list[int] = []  # human opens and clicks by local hour, 24 capped counts (send_time.py)
    assignments: dict[str, Assignment] = {}  # by campaign: the latest firing's arm (experiments.py)
    activity: Activity | None = None  # counts for the propensity model (propensity/activity.py)

    @property
    def is_redirect(self) -> bool:
        return self.merged_into is not None


profile_decoder = msgspec.json.Decoder(Profile)
pending_decoder = msgspec.json.Decoder(Pending)


_encoder = msgspec.json.Encoder()


def encode_due(when: datetime) -> bytes:
    """A `due` table value: `when.isoformat()` as bytes, the format the table has always held
    (read back with datetime.fromisoformat, compared byte for byte to skip unchanged writes).

    On every profile write, and isoformat with a time zone is slow (~10x msgspec's datetime
    encoding; ~4% of the worker's CPU). msgspec writes the same RFC 3339 text but for a UTC
    time's `Z`, where isoformat writes `+00:00`; event times are nearly all UTC (msgspec
    decodes `Z` and `+00:00` to `UTC`). Other offsets keep isoformat: msgspec drops an
    offset's seconds.
    """
    if when.tzinfo is UTC:
        return _encoder.encode(when)[1:-2] + b"+00:00"  # '"…Z"' -> '…+00:00'
    return when.isoformat().encode()
