"""Who the visitor is: traits (address, name, locale, consent) and the other ids that reach them. Pure."""

from __future__ import annotations

from typing import Any

from retarget.common.schemas import TrackedEvent
from retarget.segmenter import consent
from retarget.segmenter.state import Profile

MAX_ALIASES = 50
consent_from_traits = consent.consent_from_traits


class UnusableEvent(ValueError):
    """The event can't be applied (e.g. malformed properties): counted and skipped."""


def apply_traits(profile: Profile, traits: Any) -> bool:
    if not isinstance(traits, dict):
        raise UnusableEvent("traits is not an object")
    if not traits:  # most track events carry none
        return False
    before = (profile.email, profile.first_name, profile.last_name, profile.locale, profile.timezone)
    consent_before = profile.consent
    email = traits.get("email")
    if isinstance(email, str) and "@" in email:
        profile.email = email.strip()
    for attr, camel in (("first_name", "firstName"), ("last_name", "lastName")):
        value = traits.get(camel) or traits.get(attr)
        if isinstance(value, str) and value.strip():
            setattr(profile, attr, value.strip())
    for attr in ("locale", "timezone"):
        if isinstance(traits.get(attr), str) and traits[attr]:
            setattr(profile, attr, traits[attr])
    said = consent.consent_from_traits(traits)
    if said is not None:
        profile.consent = said
    after = (profile.email, profile.first_name, profile.last_name, profile.locale, profile.timezone)
    return before != after or consent_before != profile.consent


def note_alias(profile: Profile, event: TrackedEvent) -> bool:
    """Remember the other ids whose events reach this profile: their redirects are erased with it."""
    changed = False
    for other in (event.anonymous_id, event.previous_id, event.user_id):
        if other and other != profile.profile_id and other not in profile.aliases:
            profile.aliases = [*profile.aliases, other][-MAX_ALIASES:]
            changed = True
    return changed
