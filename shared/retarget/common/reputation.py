"""The reputation guard's rules, pure: counts in, a verdict out (docs/deliverability.md).

A workspace's complaint rate is its spam complaints over its messages sent, its hard-bounce
rate its hard bounces (5.1.x at RCPT or DATA, and DSNs that say so) over the same messages,
both over a rolling window of hourly buckets (Gmail's Postmaster Tools measure a day). Each
is judged for the workspace as a whole and for each of its sending domains (a provider judges
the From / DKIM domain), and a rate counts only over at least `min_sent` messages: on a small
volume one complaint is a large share (1 in 100 is 1%), which says nothing about a list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

BUCKET = timedelta(hours=1)

Kind = Literal["complaint_rate", "hard_bounce_rate"]
Level = Literal["ok", "warn", "pause"]
ALL_DOMAINS = "*"  # the scope of the workspace's rates summed over its domains


@dataclass(frozen=True)
class Counts:
    sent: int = 0
    hard_bounces: int = 0
    complaints: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.sent + other.sent,
            self.hard_bounces + other.hard_bounces,
            self.complaints + other.complaints,
        )


@dataclass(frozen=True)
class Thresholds:
    complaint_warn: float = 0.001  # Gmail: keep below 0.1%
    complaint_pause: float = 0.003  # Gmail and Yahoo bulk-sender rule: never reach 0.3%
    hard_bounce_warn: float = 0.01
    hard_bounce_pause: float = 0.02
    min_sent: int = 1000


@dataclass(frozen=True)
class Rate:
    domain: str  # ALL_DOMAINS for the whole workspace
    kind: Kind
    events: int
    sent: int
    level: Level

    @property
    def value(self) -> float:
        return self.events / self.sent if self.sent else 0.0


@dataclass(frozen=True)
class Verdict:
    rates: tuple[Rate, ...]

    @property
    def level(self) -> Level:
        levels = {r.level for r in self.rates}
        return "pause" if "pause" in levels else "warn" if "warn" in levels else "ok"

    @property
    def worst(self) -> Rate | None:
        """The rate that decides the level (the highest above its threshold), for the log and the pause."""
        deciding = [r for r in self.rates if r.level == self.level and r.level != "ok"]
        return max(deciding, key=lambda r: r.value, default=None)


def window_start(now: datetime, window: timedelta) -> datetime:
    """The first bucket of the window that ends with the bucket `now` falls in."""
    current = now - timedelta(seconds=now.timestamp() % BUCKET.total_seconds())  # as date_bin from the epoch
    return current - (window - BUCKET)


def level_of(events: int, sent: int, warn: float, pause: float, min_sent: int) -> Level:
    if sent < min_sent or sent == 0:
        return "ok"  # too few messages for a rate to mean anything
    rate = events / sent
    if rate >= pause:
        return "pause"
    return "warn" if rate >= warn else "ok"


def rates_of(domain: str, counts: Counts, t: Thresholds) -> tuple[Rate, Rate]:
    return (
        Rate(
            domain,
            "complaint_rate",
            counts.complaints,
            counts.sent,
            level_of(counts.complaints, counts.sent, t.complaint_warn, t.complaint_pause, t.min_sent),
        ),
        Rate(
            domain,
            "hard_bounce_rate",
            counts.hard_bounces,
            counts.sent,
            level_of(counts.hard_bounces, counts.sent, t.hard_bounce_warn, t.hard_bounce_pause, t.min_sent),
        ),
    )


def judge(per_domain: Mapping[str, Counts], thresholds: Thresholds) -> Verdict:
    """The workspace's rates over its window: summed over its domains, then each domain alone."""
    total = sum(per_domain.values(), Counts())
    rates: list[Rate] = list(rates_of(ALL_DOMAINS, total, thresholds))
    if len(per_domain) > 1:  # with one domain its rates are the workspace's
        for domain in sorted(per_domain):
            rates.extend(rates_of(domain, per_domain[domain], thresholds))
    return Verdict(tuple(rates))


def describe(rate: Rate) -> str:
    """One line for logs, the pause's detail and the CLI: no address, no secret."""
    scope = "all domains" if rate.domain == ALL_DOMAINS else rate.domain
    name = "complaint rate" if rate.kind == "complaint_rate" else "hard-bounce rate"
    return f"{name} {rate.value:.2%} ({rate.events} of {rate.sent} sent, {scope})"


def sending_domain(address: str) -> str:
    """The domain the counts go to, from an envelope sender. Bounded and NUL-free: the address
    comes from a message (or a report's MAC-checked VERP address, whose domain the MAC doesn't
    cover), and PostgreSQL's text and index can't hold a NUL or an unbounded key."""
    return address.rpartition("@")[2].strip(" <>").lower().replace("\x00", "")[:253]


def holds(campaign: str, transactional: Iterable[str]) -> bool:
    """Is a message of this campaign held while its workspace is paused? Every campaign is
    marketing (retargeting mail is) unless it is listed as transactional."""
    return campaign not in set(transactional)
