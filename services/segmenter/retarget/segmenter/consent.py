"""Marketing-email consent and objection: what a profile records, and what an objection stops. Pure.

Consent is read from (the first name present wins):
- identify `traits`, and `context.traits` of any call: `email_consent`, `marketing_consent`,
  `emailConsent`, `marketingConsent`, `consent` — a boolean, or one of granted / denied,
  opt_in / opt_out, yes / no, subscribed / unsubscribed, true / false, 1 / 0;
  `unsubscribed: true` is an objection;
- Segment Consent Management's `context.consent.categoryPreferences` on any call: a
  category named Marketing, Email, Email Marketing, EmailMarketing or Email_Marketing (any
  case) set true or false;
- an `Unsubscribed` track event (ingest's tracking links, or the platform's own): scope
  `all` (or none given) is an objection; scope `campaign` blocks only `properties.campaign`.

GDPR: an objection to direct marketing also stops the profiling behind it. So an objection
(consent false) cancels the pending campaigns, drops the cart, the viewed products and
the window counts, and nothing new is scheduled or recorded until consent is given again
(a later explicit consent true). Opt-in workspaces are enforced at fire time (firing.py).
"""

from __future__ import annotations

from typing import Any

from retarget.common.schemas import TrackedEvent
from retarget.segmenter.outcomes import Outcome
from retarget.segmenter.state import Profile

TRAIT_NAMES = ("email_consent", "marketing_consent", "emailConsent", "marketingConsent", "consent")
CATEGORY_NAMES = {"marketing", "email", "email marketing", "emailmarketing", "email_marketing"}
_YES = {"true", "yes", "granted", "opt_in", "opted_in", "subscribed", "1"}
_NO = {"false", "no", "denied", "opt_out", "opted_out", "unsubscribed", "0"}


def consent_from_traits(traits: dict[str, Any]) -> bool | None:
    """Marketing-email consent as platforms send it in traits; None when the traits don't say."""
    if traits.get("unsubscribed") is True:
        return False
    for name in TRAIT_NAMES:
        value = _yes_no(traits.get(name))
        if value is not None:
            return value
    return None


def consent_from_context(context: dict[str, Any]) -> bool | None:
    """Segment Consent Management: `context.consent.categoryPreferences`."""
    consent = context.get("consent")
    prefs = consent.get("categoryPreferences") if isinstance(consent, dict) else None
    if not isinstance(prefs, dict):
        return None
    for name, value in prefs.items():
        if isinstance(name, str) and name.strip().lower() in CATEGORY_NAMES:
            answer = _yes_no(value)
            if answer is not None:
                return answer
    return None


def apply_unsubscribe(profile: Profile, event: TrackedEvent) -> tuple[bool, list[Outcome]]:
    """An `Unsubscribed` event: an objection (scope all) or one campaign blocked."""
    props = event.properties
    campaign = props.get("campaign")
    if props.get("scope") == "campaign" and isinstance(campaign, str) and campaign:
        if campaign in profile.blocked_campaigns:
            return False, []
        profile.blocked_campaigns = [*profile.blocked_campaigns, campaign]
        outcomes = []
        if profile.pending.pop(campaign, None) is not None:
            outcomes.append(Outcome("cancelled", campaign, "unsubscribed from campaign"))
        return True, outcomes
    changed = profile.consent is not False
    profile.consent = False
    return changed, []


def stop_profiling(profile: Profile) -> list[Outcome]:
    """After an objection: cancel what is pending and forget the marketing behaviour."""
    outcomes = [Outcome("cancelled", name, "objected to marketing") for name in profile.pending]
    profile.pending = {}
    profile.cart = {}
    profile.viewed = []
    profile.occurrences = {}
    profile.engaged_hours = []  # when they read their mail is behaviour too
    profile.activity = None  # the propensity model's counts are profiling too
    return outcomes


def may_profile(profile: Profile) -> bool:
    return profile.consent is not False


def _yes_no(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _YES | _NO:
        return value.lower() in _YES
    return None
