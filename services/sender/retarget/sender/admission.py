"""May this message go out now? Suppression, consent, frequency caps, quiet hours — pure.

Checked in this order; the first that says no decides:
1. suppression (workspace or global list) → 'suppressed' with the list's reason;
2. consent → 'suppressed': an opt-in workspace needs the recipient's recorded consent, and in
   either mode an explicit objection (consent false) stops marketing email;
3. frequency caps → 'capped'. A recipient's "admitted" messages count: sent, being sent,
   or deferred (a deferral holds its slot, else a retry could break the cap). The batch's own
   earlier admissions count too (`CapTally`), so two messages to one recipient in one batch
   can't both pass;
4. quiet hours in the recipient's timezone (the workspace's when unknown) → postponed to
   the end of the quiet period, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from retarget.sender.policy import QuietHours, SendingPolicy
from retarget.sender.rules import Verdict

CAPPED_RECIPIENT = "recipient_cap"
CAPPED_CAMPAIGN = "campaign_cap"
QUIET_HOURS = "quiet_hours"
PAUSED = "paused"  # the workspace's marketing mail is paused (reputation guard): held, not refused

Sent = tuple[str, datetime]
"""(campaign, admitted at) of one message that counts against the caps."""


@dataclass(frozen=True)
class Postpone:
    until: datetime
    reason: str = QUIET_HOURS


Decision = Verdict | Postpone | None
"""None: send now."""


@dataclass
class CapTally:
    """Admissions made earlier in the same batch, per (workspace, recipient hash)."""

    admitted: dict[tuple[str, bytes], list[Sent]] = field(default_factory=dict)

    def add(self, key: tuple[str, bytes], campaign: str, at: datetime) -> None:
        self.admitted.setdefault(key, []).append((campaign, at))

    def of(self, key: tuple[str, bytes]) -> list[Sent]:
        return self.admitted.get(key, [])


NO_CONSENT = "no_consent"
OBJECTED = "objected"


def consent_refusal(policy: SendingPolicy, consent: bool | None) -> Verdict | None:
    """GDPR: opt-in needs consent on record; an objection to direct marketing always wins."""
    if consent is False:
        return Verdict("suppressed", OBJECTED)
    if policy.consent_mode == "opt_in" and consent is not True:
        return Verdict("suppressed", NO_CONSENT)
    return None


def cap_refusal(policy: SendingPolicy, campaign: str, history: list[Sent], now: datetime) -> Verdict | None:
    for rule in policy.caps_for(campaign):
        since = now - timedelta(seconds=rule.window_s)
        counted = sum(1 for c, at in history if at > since and rule.applies_to(c))
        if counted >= rule.max_messages:
            reason = CAPPED_RECIPIENT if rule.campaign == "*" else CAPPED_CAMPAIGN
            return Verdict("capped", reason)
    return None


def zone(name: str | None, fallback: str = "UTC") -> ZoneInfo:
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")  # pragma: no cover - UTC always exists


def quiet_until(quiet: QuietHours | None, tz: ZoneInfo, now: datetime) -> datetime | None:
    """The end of the quiet period `now` falls in (UTC), or None when sending is allowed."""
    if quiet is None:
        return None
    local = now.astimezone(tz)
    t = local.time().replace(tzinfo=None)
    if quiet.start < quiet.end:
        inside, end_day = quiet.start <= t < quiet.end, local.date()
    else:  # wraps midnight, e.g. 21:00-08:00
        inside = t >= quiet.start or t < quiet.end
        end_day = local.date() if t < quiet.end else local.date() + timedelta(days=1)
    if not inside:
        return None
    # A wall time skipped by a DST jump resolves forward through UTC, never to the past.
    end = datetime.combine(end_day, quiet.end, tzinfo=tz).astimezone(UTC)
    return max(end, now)


def decide(
    *,
    suppression_reason: str | None,
    policy: SendingPolicy,
    campaign: str,
    history: list[Sent],
    recipient_timezone: str | None,
    now: datetime,
    consent: bool | None = None,
) -> Decision:
    if suppression_reason is not None:
        return Verdict("suppressed", suppression_reason)
    refusal = consent_refusal(policy, consent) or cap_refusal(policy, campaign, history, now)
    if refusal is not None:
        return refusal
    until = quiet_until(policy.quiet_hours, zone(recipient_timezone, policy.timezone), now)
    return Postpone(until) if until is not None else None
