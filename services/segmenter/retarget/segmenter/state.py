"""What the segmenter remembers about a visitor, stored as msgspec JSON in faust tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from retarget.common.schemas import CartLine


class Pending(msgspec.Struct, kw_only=True):
    """A campaign waiting to fire for a profile: the durable due-trigger entry."""

    campaign: str
    due_at: datetime
    entry_message_id: str


class Profile(msgspec.Struct, kw_only=True):
    workspace_id: str
    profile_id: str
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    locale: str = "en"
    timezone: str | None = None
    traits: dict[str, Any] = {}
    cart: dict[str, CartLine] = {}
    pending: dict[str, Pending] = {}  # by campaign
    recent_message_ids: list[str] = []  # newest last; duplicates inside this window are ignored


profile_decoder = msgspec.json.Decoder(Profile)
pending_decoder = msgspec.json.Decoder(Pending)
