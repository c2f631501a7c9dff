"""The demo's recipients read mail at hours of their own (the send-time benchmark's model)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

from retarget.demo.open_hours import BEST_OPEN_RATE, FLOOR_OPEN_RATE, maybe_open, open_chance, true_hour


def test_each_person_has_a_stable_hour_and_people_differ():
    assert true_hour("person-1") == true_hour("person-1")
    assert len(Counter(true_hour(f"person-{n}") for n in range(500))) >= 6


def test_a_message_sent_just_before_their_hour_is_likeliest_opened():
    day = datetime(2026, 3, 2, tzinfo=UTC)
    chances = {h: open_chance(day + timedelta(hours=h), 9) for h in range(24)}
    assert max(chances, key=lambda h: chances[h]) == 9
    assert chances[9] == BEST_OPEN_RATE
    assert chances[10] < chances[3] < chances[8]  # just after: it waits a day under newer mail
    assert all(FLOOR_OPEN_RATE <= c <= BEST_OPEN_RATE for c in chances.values())


def test_opens_land_around_their_hour():
    rng = random.Random(1)
    sent = datetime(2026, 3, 2, 1, tzinfo=UTC)
    opens = [maybe_open(sent, 20, rng) for _ in range(300)]
    hours = Counter(o.hour for o in opens if o is not None)
    assert set(hours) <= {19, 20, 21} and hours[20] > 0
