"""Send-time optimisation's pure rules: the histogram, the prior, the smoothing and the choice of
a send time across time zones, DST, quiet hours and the max_delay bound."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from retarget.segmenter.send_time import (
    HISTOGRAM_CAP,
    HOURS,
    PRIOR,
    SendWindow,
    choose_send_time,
    merge_histograms,
    note_engagement,
    preferred_hour,
    zone,
)

UTC_ZONE = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")
DAY = timedelta(hours=24)
NO_QUIET = SendWindow()


def hist(**hours: int) -> list[int]:
    counts = [0] * HOURS
    for name, count in hours.items():
        counts[int(name[1:])] = count
    return counts


# -- histogram --------------------------------------------------------------------------


def test_an_engagement_counts_in_the_local_hour_of_the_zone():
    at = datetime(2026, 1, 10, 19, 30, tzinfo=UTC)  # 14:30 in New York (winter, UTC-5)
    assert note_engagement([], at, NEW_YORK) == hist(h14=1)
    assert note_engagement([], at, UTC_ZONE) == hist(h19=1)


def test_the_histogram_is_halved_when_full_so_it_stays_small_and_recent_habits_win():
    counts = hist(h9=HISTOGRAM_CAP)
    after = note_engagement(counts, datetime(2026, 1, 10, 20, tzinfo=UTC), UTC_ZONE)
    assert after == hist(h9=HISTOGRAM_CAP // 2, h20=1)
    assert sum(after) <= HISTOGRAM_CAP
    grown: list[int] = []
    for n in range(10 * HISTOGRAM_CAP):  # however many opens, the counts stay bounded
        grown = note_engagement(grown, datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=n), UTC_ZONE)
    assert len(grown) == HOURS and sum(grown) <= HISTOGRAM_CAP


def test_merging_histograms_is_idempotent():
    a, b = hist(h9=3), hist(h9=1, h20=2)
    merged = merge_histograms(a, b)
    assert merged == hist(h9=3, h20=2)
    assert merge_histograms(merged, b) == merged  # a replayed merge changes nothing
    assert merge_histograms([], b) == b and merge_histograms(a, []) == a


# -- prior and smoothing ----------------------------------------------------------------


def test_the_prior_is_a_distribution_whose_best_hour_is_a_morning_one():
    assert abs(sum(PRIOR) - 1) < 1e-9 and len(PRIOR) == HOURS
    assert preferred_hour([]) == 9


def test_one_open_outweighs_the_prior_and_the_prior_breaks_ties_between_equal_counts():
    assert preferred_hour(hist(h3=1)) == 3
    assert preferred_hour(hist(h3=1, h19=1)) == 19  # same counts: the population's likelier hour
    assert preferred_hour(hist(h14=2, h19=1)) == 14


def test_an_invalid_zone_falls_back_to_the_next_candidate():
    assert zone("Mars/Olympus", "America/New_York") == NEW_YORK
    assert zone(None, "") == UTC_ZONE


# -- choosing the send time -------------------------------------------------------------


def test_the_send_time_is_the_next_start_of_the_preferred_hour():
    wait_end = datetime(2026, 3, 2, 5, 20, tzinfo=UTC)
    assert choose_send_time(hist(h14=3), wait_end, DAY, UTC_ZONE, NO_QUIET) == datetime(
        2026, 3, 2, 14, tzinfo=UTC
    )
    later = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)  # past today's 14:00: tomorrow's
    assert choose_send_time(hist(h14=3), later, DAY, UTC_ZONE, NO_QUIET) == datetime(
        2026, 3, 3, 14, tzinfo=UTC
    )


def test_a_wait_ending_inside_the_preferred_hour_sends_at_once():
    wait_end = datetime(2026, 3, 2, 14, 40, tzinfo=UTC)
    assert choose_send_time(hist(h14=3), wait_end, DAY, UTC_ZONE, NO_QUIET) == wait_end


def test_no_history_sends_at_the_priors_hour():
    wait_end = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    assert choose_send_time([], wait_end, DAY, UTC_ZONE, NO_QUIET) == datetime(2026, 3, 2, 9, tzinfo=UTC)


def test_the_hour_is_local_to_the_zone():
    wait_end = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)  # 07:00 in New York
    chosen = choose_send_time(hist(h9=2), wait_end, DAY, NEW_YORK, NO_QUIET)
    assert chosen == datetime(2026, 1, 10, 14, 0, tzinfo=UTC)  # 09:00 New York
    assert chosen.tzinfo is UTC


def test_max_delay_bounds_the_hold_and_then_the_best_reachable_hour_wins():
    wait_end = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # preferred 20:00 is 10 h away
    assert choose_send_time(hist(h20=3), wait_end, timedelta(hours=10), UTC_ZONE, NO_QUIET) == datetime(
        2026, 3, 2, 20, tzinfo=UTC
    )
    short = timedelta(hours=3)  # out of reach: the best of 10:00 (now), 11, 12, 13 by weight
    chosen = choose_send_time(hist(h20=3), wait_end, short, UTC_ZONE, NO_QUIET)
    assert wait_end <= chosen <= wait_end + short
    weights_best = max(range(10, 14), key=lambda h: (PRIOR[h], -h))
    assert chosen == datetime(2026, 3, 2, weights_best, tzinfo=UTC)


def test_a_zero_max_delay_sends_at_the_end_of_the_wait():
    wait_end = datetime(2026, 3, 2, 2, 7, tzinfo=UTC)
    assert choose_send_time(hist(h9=5), wait_end, timedelta(0), UTC_ZONE, NO_QUIET) == wait_end


def test_quiet_hours_are_skipped_and_their_end_is_a_candidate():
    quiet = SendWindow("UTC", time(21), time(8))
    night_owl = hist(h23=5)  # prefers a quiet hour: gets the best allowed one instead
    wait_end = datetime(2026, 3, 2, 20, 30, tzinfo=UTC)
    chosen = choose_send_time(night_owl, wait_end, DAY, UTC_ZONE, quiet)
    assert chosen == datetime(2026, 3, 3, 9, tzinfo=UTC)  # the prior's best allowed hour
    ends_in_quiet = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    chosen = choose_send_time(hist(h8=1), ends_in_quiet, DAY, UTC_ZONE, quiet)
    assert chosen == datetime(2026, 3, 3, 8, tzinfo=UTC)  # the quiet period's end
    odd_end = SendWindow("UTC", time(22), time(7, 30))
    chosen = choose_send_time(hist(h7=2), ends_in_quiet, DAY, UTC_ZONE, odd_end)
    assert chosen == datetime(2026, 3, 3, 7, 30, tzinfo=UTC)  # 07:30 is allowed, 07:00 is not


def test_all_quiet_within_the_bound_keeps_the_end_of_the_wait():
    quiet = SendWindow("UTC", time(21), time(8))
    wait_end = datetime(2026, 3, 2, 22, 0, tzinfo=UTC)
    assert choose_send_time([], wait_end, timedelta(hours=2), UTC_ZONE, quiet) == wait_end


def test_dst_spring_forward_keeps_the_local_hour():
    # New York moves from UTC-5 to UTC-4 on 2026-03-08 at 02:00 local
    before = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)  # 07:00 EST
    assert choose_send_time(hist(h9=3), before, DAY, NEW_YORK, NO_QUIET) == datetime(
        2026, 3, 7, 14, tzinfo=UTC
    )
    after = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)  # 08:00 EDT
    assert choose_send_time(hist(h9=3), after, DAY, NEW_YORK, NO_QUIET) == datetime(
        2026, 3, 8, 13, tzinfo=UTC
    )


def test_dst_skipped_hour_lands_after_the_jump_and_a_repeated_hour_counts_once():
    skipped = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # 00:00 EST; 02:00 local does not exist that night
    chosen = choose_send_time(hist(h2=3), skipped, timedelta(hours=6), NEW_YORK, NO_QUIET)
    assert chosen.astimezone(NEW_YORK).hour != 2 or chosen > skipped
    assert skipped <= chosen <= skipped + timedelta(hours=6)
    # 2026-11-01: 01:00-02:00 local happens twice; the first occurrence is chosen
    fall = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)  # 23:00 EDT on Oct 31
    chosen = choose_send_time(hist(h1=3), fall, timedelta(hours=6), NEW_YORK, NO_QUIET)
    assert chosen == datetime(2026, 11, 1, 5, 0, tzinfo=UTC)  # 01:00 EDT, not 01:00 EST (06:00 UTC)


def test_the_choice_depends_on_its_inputs_only():
    wait_end = datetime(2026, 3, 2, 5, 20, tzinfo=UTC)
    first = choose_send_time(hist(h17=2), wait_end, DAY, NEW_YORK, NO_QUIET)
    assert all(choose_send_time(hist(h17=2), wait_end, DAY, NEW_YORK, NO_QUIET) == first for _ in range(3))
