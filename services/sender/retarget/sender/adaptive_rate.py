"""Per-domain rates that adapt to the receiver's push-back (AIMD) — a pure state machine.

A throttling (421, 4.7.x) or policy (5.7.x) reply multiplies the domain's rate down (×factor,
not below the floor); every `interval_s` without another such reply adds `step` × the
configured rate back, up to the configured rate, where the domain is forgotten. Like TCP's
congestion control: back off fast, come back slowly. The clock is the caller's (monotonic
seconds), so the tests drive it.

Many messages to a domain are in flight at once, and a throttling receiver refuses all of
them: the replies to what was sent before one cut are one signal, so a domain is cut at most
once per `CUT_GAP_S`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from retarget.sender.policy import Rate

CUT_GAP_S = 5.0
_MAX_DOMAINS = 10_000  # slowed domains remembered; past it the oldest is forgotten (back to full rate)


@dataclass(frozen=True)
class AdaptSettings:
    factor: float = 0.5  # multiplied into the rate on each cut
    floor_per_s: float = 0.1  # never slower than this
    step: float = 0.1  # of the configured rate, added back per quiet interval
    interval_s: float = 60.0


@dataclass
class _Slowed:
    per_s: float  # the rate since `since`
    since: float  # when it was last cut (recovery counts intervals from here)


class AdaptiveRates:
    def __init__(self, settings: AdaptSettings | None = None, max_domains: int = _MAX_DOMAINS) -> None:
        self.settings = settings or AdaptSettings()
        self.max_domains = max_domains
        self._slowed: OrderedDict[str, _Slowed] = OrderedDict()

    def rate(self, domain: str, configured: Rate, now: float) -> Rate:
        """The rate to use for `domain` now: the configured one unless the domain was slowed."""
        slowed = self._slowed.get(domain)
        if slowed is None or configured.unlimited:
            return configured
        per_s = self._recovered(slowed, configured, now)
        if per_s >= configured.per_s:
            del self._slowed[domain]
            return configured
        return _scaled(configured, per_s)

    def slow_down(self, domain: str, configured: Rate, now: float) -> bool:
        """A throttling or policy reply from `domain`: cut its rate. False when it was just cut."""
        if configured.unlimited:
            return False  # nothing to multiply: give the domain a rate (RETARGET_RATE_DOMAIN) to adapt
        slowed = self._slowed.get(domain)
        if slowed is not None and now - slowed.since < CUT_GAP_S:
            return False
        current = configured.per_s if slowed is None else self._recovered(slowed, configured, now)
        per_s = max(self.settings.floor_per_s, current * self.settings.factor)
        self._slowed[domain] = _Slowed(min(per_s, configured.per_s), now)
        self._slowed.move_to_end(domain)
        while len(self._slowed) > self.max_domains:
            self._slowed.popitem(last=False)
        return True

    def slowed(self) -> list[str]:
        """The domains below their configured rate (or recovering towards it)."""
        return list(self._slowed)

    def _recovered(self, slowed: _Slowed, configured: Rate, now: float) -> float:
        intervals = math.floor(max(0.0, now - slowed.since) / self.settings.interval_s)
        return min(configured.per_s, slowed.per_s + intervals * self.settings.step * configured.per_s)


def _scaled(configured: Rate, per_s: float) -> Rate:
    """`configured` slowed to `per_s`, its burst shrunk alike (a full burst would undo the cut)."""
    return Rate(per_s, max(1, math.floor(configured.burst * per_s / configured.per_s)))
