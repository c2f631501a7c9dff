"""The demo's optional past weeks: today's buyers were more active before, and nobody is mailed about it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from statistics import mean

from retarget.demo.traffic import visitors

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def past(person) -> list[dict]:
    return [e for e in person.events if datetime.fromisoformat(e["timestamp"]) < NOW]


def test_history_is_opt_in_and_leaves_todays_traffic_as_it_was():
    plain = [v.events for v in visitors(80, seed=3, now=NOW)]
    with_history = list(visitors(80, seed=3, now=NOW, history_days=28))
    assert [[e for e in v.events if e not in past(v)] for v in with_history] == [
        [e for e in events if datetime.fromisoformat(e["timestamp"]) >= NOW] for events in plain
    ]
    assert all(not past_e for past_e in ([e for e in events if e.get("event") != "Cart Abandoned" and datetime.fromisoformat(e["timestamp"]) < NOW] for events in plain))  # fmt: skip


def test_todays_buyers_were_more_active_in_the_week_before():
    people = list(visitors(1500, seed=4, now=NOW, history_days=28))

    def last_week(person) -> int:
        return sum(
            1 for e in past(person) if datetime.fromisoformat(e["timestamp"]) > NOW - timedelta(days=7)
        )

    buyers = [last_week(p) for p in people if p.behaviour == "buyer"]
    others = [last_week(p) for p in people if p.behaviour in ("browser", "reader", "trialist")]
    assert mean(buyers) > 2 * mean(others)


def test_the_past_stays_in_time_order_and_mails_nobody():
    for person in visitors(300, seed=5, now=NOW, history_days=28):
        times = [e["timestamp"] for e in person.events]
        assert times == sorted(times, key=datetime.fromisoformat)
        history = past(person)
        assert all(datetime.fromisoformat(e["timestamp"]) >= NOW - timedelta(days=29) for e in history)
        # no cart adds and no order ids in the past: no campaign entry that could still fire
        assert not [e for e in history if e.get("event") == "Product Added"]
        assert not [e for e in history if "order_id" in e.get("properties", {})]
    ids = [e["messageId"] for v in visitors(300, seed=5, now=NOW, history_days=28) for e in v.events]
    assert len(ids) == len(set(ids))


def test_buyers_bought_more_often_before_and_looked_around_just_before_today():
    people = list(visitors(1500, seed=6, now=NOW, history_days=28))
    buyers = [p for p in people if p.behaviour == "buyer"]
    others = [p for p in people if p.behaviour in ("browser", "reader", "trialist")]

    def orders(person) -> int:
        return sum(1 for e in past(person) if e.get("event") == "Order Completed")

    assert mean(orders(p) for p in buyers) > 1.5 * mean(orders(p) for p in others)
    recent = [
        any(datetime.fromisoformat(e["timestamp"]) > NOW - timedelta(days=4) for e in past(p)) for p in buyers
    ]
    assert sum(recent) == len(buyers)  # every order today followed days of looking
