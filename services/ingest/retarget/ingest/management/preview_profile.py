"""A segmenter profile (its profile API's JSON: retarget.segmenter.state.Profile) as what
the composer's preview takes: the trigger fields `recipient` and `cart`, as the segmenter
would fill them when the campaign fires. Pure; fields the profile lacks stay the sample's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_RECIPIENT_FIELDS = ("email", "first_name", "last_name", "locale", "timezone", "consent")


def preview_profile(profile: Mapping[str, Any]) -> dict[str, Any]:
    recipient = {f: profile[f] for f in _RECIPIENT_FIELDS if profile.get(f) is not None}
    found: dict[str, Any] = {}
    if recipient.get("email"):  # a recipient needs an address; without one the sample's stays
        found["recipient"] = recipient
    items = profile.get("cart") or {}
    if isinstance(items, Mapping) and items:
        found["cart"] = [
            item["line"] for item in items.values() if isinstance(item, Mapping) and "line" in item
        ]
    return found
