"""The decision rules, as pure functions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from retarget.common.testing import FakeClock
from retarget.sender.rules import (
    RetryPolicy,
    Verdict,
    classify_reply,
    replays_outcome,
    schedule_retry,
)
from retarget.sender.transport import SmtpReply


@pytest.mark.parametrize(
    ("reply", "outcome", "reason", "suppress", "slows"),
    [
        (SmtpReply(250, "ok", "done"), "sent", "accepted", False, False),
        (SmtpReply(450, "mailbox busy", "rcpt"), "deferred", "soft_bounce", False, False),
        (SmtpReply(421, "closing", "mail"), "deferred", "throttled", False, True),
        (
            SmtpReply(421, "4.7.0 [TSS04] deferred due to unexpected volume", "rcpt"),
            "deferred",
            "throttled",
            False,
            True,
        ),
        (SmtpReply(451, "try later", "done"), "deferred", "soft_bounce", False, False),
        (
            SmtpReply(452, "4.2.2 The recipient's inbox is out of storage space", "rcpt"),
            "deferred",
            "soft_bounce",
            False,
            False,
        ),
        (SmtpReply(None, "dropped", "data"), "deferred", "connection_lost", False, False),
        (SmtpReply(None, "refused", "connect"), "deferred", "connection_lost", False, False),
        (SmtpReply(550, "no such user", "rcpt"), "bounced", "hard_bounce", True, False),
        (
            SmtpReply(550, "5.1.1 The email account that you tried to reach does not exist", "rcpt"),
            "bounced",
            "hard_bounce",
            True,
            False,
        ),
        (SmtpReply(554, "rejected", "done"), "failed", "policy_refusal", False, True),
        (SmtpReply(550, "5.7.1 Message refused by policy", "rcpt"), "failed", "policy_refusal", False, True),
        (
            SmtpReply(
                550, "5.7.26 Unauthenticated email is not accepted due to domain's DMARC policy", "done"
            ),
            "failed",
            "policy_refusal",
            False,
            True,
        ),
        (
            SmtpReply(552, "5.3.4 Message size exceeds fixed limit", "done"),
            "failed",
            "message_refused",
            False,
            False,
        ),
        (SmtpReply(553, "sender refused", "mail"), "failed", "sender_refused", False, False),
        (SmtpReply(354, "odd", "done"), "failed", "unexpected_reply", False, False),
    ],
)
def test_a_reply_decides_the_outcome(
    reply: SmtpReply, outcome: str, reason: str, suppress: bool, slows: bool
) -> None:
    assert classify_reply(reply) == Verdict(outcome, reason, suppress, slows)  # type: ignore[arg-type]


def test_recorded_outcomes_replay_but_an_open_claim_does_not() -> None:
    assert replays_outcome("sent") and replays_outcome("deferred") and replays_outcome("suppressed")
    assert not replays_outcome("claimed")


def test_retries_back_off_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(initial_s=60, max_interval_s=300, max_age_s=86400, max_attempts=10)
    now = FakeClock().now()
    delays = [schedule_retry(policy, n, now, now) for n in range(1, 6)]
    assert [d - now for d in delays] == [  # type: ignore[operator]
        timedelta(seconds=s) for s in (60, 120, 240, 300, 300)
    ]


def test_retries_stop_at_max_attempts() -> None:
    policy = RetryPolicy(initial_s=60, max_interval_s=300, max_age_s=86400, max_attempts=3)
    now = FakeClock().now()
    assert schedule_retry(policy, 3, now, now) == Verdict("expired", "max_attempts")


def test_retries_stop_when_the_next_one_would_be_too_old() -> None:
    policy = RetryPolicy(initial_s=600, max_interval_s=600, max_age_s=3600, max_attempts=100)
    clock = FakeClock()
    first = clock.now()
    clock.advance(seconds=3100)
    assert schedule_retry(policy, 5, first, clock.now()) == Verdict("expired", "max_age")
    assert schedule_retry(policy, 5, first, first + timedelta(seconds=2900)) == first + timedelta(
        seconds=3500
    )
