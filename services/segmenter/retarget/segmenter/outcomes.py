"""What the metrics count about campaigns: a wait scheduled, restarted, cancelled or fired."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    kind: str  # scheduled | restarted | cancelled | fired
    campaign: str
    reason: str = ""
