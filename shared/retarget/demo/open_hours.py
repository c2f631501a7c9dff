"""When the demo's simulated recipients read their mail: each person has an hour of their own.

A person checks mail around one local hour (drawn once per person, deterministically from
their id, from a morning / lunch / evening mix) and opens a message with a chance that falls
the longer it has sat in the inbox by then: a message sent just before their hour is near the
top when they look, one sent just after it waits a day under newer mail. The human open lands
at their hour (± one hour of jitter). Machine opens (a privacy proxy fetching every pixel at
delivery) are not modelled here: the segmenter never learns from them (attribution.py).
Pure; bench/bench_send_time.py measures send-time optimisation on it.
"""

from __future__ import annotations

import hashlib
import math
import random
from datetime import UTC, datetime, timedelta

#: the local hours people read mail at, with how many people favour each
_HABITS = {7: 3, 8: 5, 9: 4, 12: 4, 13: 3, 17: 2, 18: 3, 19: 4, 20: 4, 21: 3, 22: 2}
BEST_OPEN_RATE = 0.6  # a message on top of the inbox when they look
FLOOR_OPEN_RATE = 0.08  # one buried under a day of newer mail
BURY_HOURS = 6.0  # how fast the chance falls with the hours a message waited


def true_hour(person_id: str) -> int:
    """The person's own reading hour (UTC here: the demo workspace's zone)."""
    seed = int.from_bytes(hashlib.sha256(person_id.encode()).digest()[:8], "big")
    hours, weights = zip(*_HABITS.items(), strict=True)
    return random.Random(seed).choices(hours, weights)[0]


def next_reading(sent_at: datetime, hour: int) -> datetime:
    """The first time at or after `sent_at` the person looks at their mail."""
    at = sent_at.astimezone(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    return at if at >= sent_at - timedelta(minutes=59) else at + timedelta(days=1)


def open_chance(sent_at: datetime, hour: int) -> float:
    """How likely the person opens a message sent at `sent_at`."""
    waited = max(0.0, (next_reading(sent_at, hour) - sent_at).total_seconds() / 3600)
    return FLOOR_OPEN_RATE + (BEST_OPEN_RATE - FLOOR_OPEN_RATE) * math.exp(-waited / BURY_HOURS)


def maybe_open(sent_at: datetime, hour: int, rng: random.Random) -> datetime | None:
    """When the person opens the message, or None when they don't."""
    if rng.random() >= open_chance(sent_at, hour):
        return None
    jitter = timedelta(minutes=rng.randint(-60, 60))
    return max(sent_at, next_reading(sent_at, hour) + jitter)
