"""A workspace's sending policy: frequency caps, quiet hours, its rate and DKIM selectors.

Plain values, parsed from the short forms operators write in settings and tables:
caps "1/16h,3/7d" (at most 1 per 16 hours and 3 per 7 days), quiet hours "21:00-08:00"
(local time of the recipient, may wrap midnight), rates "50/100" (50 per second, bursts
of 100; "0/0" means no limit).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_CAP = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")

ANY_CAMPAIGN = "*"


@dataclass(frozen=True)
class CapRule:
    max_messages: int
    window_s: float
    campaign: str = ANY_CAMPAIGN  # '*': the recipient's messages of every campaign

    def applies_to(self, campaign: str) -> bool:
        return self.campaign in (ANY_CAMPAIGN, campaign)


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time


@dataclass(frozen=True)
class Rate:
    per_s: float
    burst: int

    @property
    def unlimited(self) -> bool:
        return self.per_s <= 0


@dataclass(frozen=True)
class SendingPolicy:
    workspace_id: str
    timezone: str = "UTC"  # the workspace's, used when the recipient's is unknown
    caps: tuple[CapRule, ...] = ()
    quiet_hours: QuietHours | None = None
    rate: Rate | None = None  # None: the sender's default per-workspace rate
    dkim_selectors: tuple[str, ...] = ()  # none: send unsigned (the relay may sign)
    known: bool = True  # False: no workspaces row (the defaults apply)
    consent_mode: str = "opt_out"  # opt_in: marketing email needs recorded consent

    def caps_for(self, campaign: str) -> tuple[CapRule, ...]:
        return tuple(rule for rule in self.caps if rule.applies_to(campaign))


def parse_caps(text: str, campaign: str = ANY_CAMPAIGN) -> tuple[CapRule, ...]:
    rules = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _CAP.match(part)
        if not match:
            raise ValueError(f"frequency cap {part!r} is not MAX/WINDOW such as 3/7d")
        count, amount, unit = match.groups()
        rules.append(CapRule(int(count), float(amount) * _UNITS[unit], campaign))
    return tuple(rules)


def parse_quiet_hours(text: str | None) -> QuietHours | None:
    if not text:
        return None
    try:
        start, end = (time.fromisoformat(p.strip()) for p in text.split("-"))
    except ValueError as exc:
        raise ValueError(f"quiet hours {text!r} are not HH:MM-HH:MM such as 21:00-08:00") from exc
    return None if start == end else QuietHours(start, end)


def parse_rate(text: str) -> Rate:
    try:
        per_s, burst = text.split("/")
        rate = Rate(float(per_s), int(burst))
    except ValueError as exc:
        raise ValueError(f"rate {text!r} is not RATE/BURST such as 50/100") from exc
    if not rate.unlimited and rate.burst < 1:
        raise ValueError(f"rate {text!r}: a limited rate needs a burst of at least 1")
    return rate


def parse_domain_rates(text: str) -> dict[str, Rate]:
    rates = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        domain, _, rate = part.partition("=")
        if not rate:
            raise ValueError(f"domain rate {part!r} is not domain=RATE/BURST")
        rates[domain.strip().lower()] = parse_rate(rate)
    return rates


def parse_selectors(column: str | None) -> tuple[str, ...]:
    """workspaces.dkim_selector: one selector, or several separated by commas (one signature each)."""
    return tuple(s.strip() for s in (column or "").split(",") if s.strip())
