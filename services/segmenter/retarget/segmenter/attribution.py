"""Attribution: which campaign gets the credit, and the revenue, for a purchase. Pure.

A touch is a person opening or clicking one of our emails: the "Email Opened" and "Email
Link Clicked" events ingest publishes for tracking links (properties `campaign`,
`message_id`), keyed by the email's profile. Machine opens and clicks (mail privacy
proxies, link scanners: `machine_open` / `machine_click` true) are not touches.

An `Order Completed` whose own timestamp lies within the window after a touch (by default
5 days after an open or a click, the market's usual; both configurable) is attributed to
the latest such touch — last touch wins, a click beating an open at the same instant. The
window is inclusive: exactly 5 days after still counts. An order counts once: its
`order_id` (else the event's messageId) is remembered on the profile, so a replayed or
re-sent order adds nothing. Revenue is `revenue`, else `total`, in the order's currency.

Only the events ingest's links publish are touches (`origin` "link", which ingest alone sets):
an "Email Opened" posted with a write key (public: it ships in pages) is kept as an ordinary
event but touches nothing — it would otherwise credit attribution and teach a stranger's send
hour. Even the links' touches carry a `campaign` trusted only as far as the data can check it: a
touch counts only for a campaign that fired for this profile (`last_fired`, which merges
carry along), and a campaign becomes a metric label only while it is loaded
(`campaign_label`); otherwise the label is `_unknown`, which no campaign name can be. So
the labels stay bounded by the campaign files, whatever clients send.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from retarget.common.schemas import TrackedEvent
from retarget.segmenter.state import Profile, Touch

TOUCH_EVENTS = {"Email Opened": "open", "Email Link Clicked": "click"}
LINK_ORIGIN = "link"  # TrackedEvent.origin of what ingest's tracking links publish
ATTRIBUTED_EVENT = "Order Attributed"
MAX_TOUCHES = 20
MAX_ORDERS = 50
UNKNOWN_CURRENCY = "unknown"
UNKNOWN_CAMPAIGN = "_unknown"  # campaign names are [a-z][a-z0-9_]*: never a real one
_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class Windows:
    open: timedelta = timedelta(days=5)
    click: timedelta = timedelta(days=5)

    def of(self, kind: str) -> timedelta:
        return self.click if kind == "click" else self.open


@dataclass(frozen=True)
class Conversion:
    campaign: str
    order_id: str
    revenue: float  # never negative (a Prometheus counter only goes up)
    currency: str  # ISO 4217 code, upper case, or "unknown"
    touch: Touch
    at: datetime  # the order's own time


def from_our_links(event: TrackedEvent) -> bool:
    """Whether ingest's tracking links produced the event. Only ingest sets `origin`; the same
    event name posted with a (public) write key is a client's claim and touches nothing."""
    return event.origin == LINK_ORIGIN


def record_touch(profile: Profile, event: TrackedEvent) -> bool:
    """Remember a human open or click; True when the profile changed."""
    kind = TOUCH_EVENTS.get(event.event or "") if from_our_links(event) else None
    props = event.properties
    campaign = props.get("campaign")
    if kind is None or not isinstance(campaign, str) or not campaign:
        return False
    if props.get("machine_open") is True or props.get("machine_click") is True:
        return False
    if campaign not in profile.last_fired:
        return False  # this campaign never emailed this profile: a forged or misrouted touch
    message_id = props.get("message_id")
    touch = Touch(
        campaign=campaign,
        kind=kind,
        at=event.timestamp,
        message_id=message_id if isinstance(message_id, str) else "",
    )
    if touch in profile.touches:
        return False
    profile.touches = sorted([*profile.touches, touch], key=lambda t: t.at)[-MAX_TOUCHES:]
    return True


def attribute_order(profile: Profile, event: TrackedEvent, windows: Windows) -> Conversion | None:
    """The conversion an `Order Completed` makes, once per order; None when no touch qualifies."""
    if event.event != "Order Completed":
        return None
    props = event.properties
    order_id = _order_id(props) or event.message_id
    if order_id in profile.attributed_orders:
        return None
    at = event.timestamp
    eligible = [t for t in profile.touches if t.at <= at and at - t.at <= windows.of(t.kind)]
    if not eligible:
        return None
    touch = max(eligible, key=lambda t: (t.at, t.kind == "click"))
    profile.attributed_orders = [*profile.attributed_orders, order_id][-MAX_ORDERS:]
    return Conversion(
        campaign=touch.campaign,
        order_id=order_id,
        revenue=_revenue(props),
        currency=_currency(props),
        touch=touch,
        at=at,
    )


def campaign_label(campaign: str, loaded: Container[str]) -> str:
    """The campaign as a Prometheus label: only loaded campaigns, so labels stay bounded."""
    return campaign if campaign in loaded else UNKNOWN_CAMPAIGN


def attributed_event(profile: Profile, conversion: Conversion, now: datetime) -> TrackedEvent:
    """The conversion on record: a track event on the events topic, keyed by the profile.

    Its messageId derives from the order, so publishing it again (a replay after a crash)
    is recognisable as the same conversion.
    """
    digest = hashlib.sha256(f"{profile.workspace_id}\x1f{conversion.order_id}".encode()).hexdigest()[:32]
    return TrackedEvent(
        workspace_id=profile.workspace_id,
        type="track",
        message_id=f"attributed-{digest}",
        timestamp=conversion.at,
        received_at=now,
        anonymous_id=profile.profile_id,
        event=ATTRIBUTED_EVENT,
        properties={
            "order_id": conversion.order_id,
            "campaign": conversion.campaign,
            "revenue": conversion.revenue,
            "currency": conversion.currency,
            "touch": conversion.touch.kind,
            "touched_at": conversion.touch.at.isoformat(),
            "message_id": conversion.touch.message_id,
        },
        context={"library": {"name": "retarget-segmenter"}},
    )


def _order_id(props: dict[str, Any]) -> str | None:
    value = props.get("order_id")
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
        return str(value)
    return None


def _revenue(props: dict[str, Any]) -> float:
    for name in ("revenue", "total"):
        value = props.get(name)
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            try:
                number = float(value)
            except ValueError:
                continue
            if math.isfinite(number):
                return max(0.0, number)
    return 0.0


def _currency(props: dict[str, Any]) -> str:
    value = props.get("currency")
    code = value.strip().upper() if isinstance(value, str) else ""
    return code if _CURRENCY.match(code) else UNKNOWN_CURRENCY
