"""The sender's decision rules, pure: no I/O, no clock of their own, no SMTP.

Each rule takes what is known and returns a Verdict (outcome + a reason from a small, fixed
vocabulary, so it can label a metric). The handler does the I/O around them. What may be
sent at all (suppression, caps, quiet hours) is admission.py; these rules judge replies,
replays and retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from retarget.common.schemas import DeliveryState
from retarget.common.smtp_classes import ReplyClass, classify
from retarget.sender.transport import SmtpReply

# reasons (beside the suppression reasons of the suppressions table, used as they are)
ACCEPTED = "accepted"
HARD_BOUNCE = "hard_bounce"
SOFT_BOUNCE = "soft_bounce"
THROTTLED = "throttled"  # 421 / 4.7.x: deferred, and the domain's rate adapts down
POLICY_REFUSAL = "policy_refusal"  # 5.7.x: the receiver refuses us, not the address
MESSAGE_REFUSED = "message_refused"  # 5.3/5.5/5.6.x: this message (size, content), not the address
CONNECTION_LOST = "connection_lost"
SENDER_REFUSED = "sender_refused"
UNEXPECTED_REPLY = "unexpected_reply"
MAX_ATTEMPTS = "max_attempts"
MAX_AGE = "max_age"
UNCONFIRMED_CLAIM = "unconfirmed_claim"
DKIM_KEY_MISSING = "dkim_key_missing"
CAMPAIGN_UNSUBSCRIBED = "campaign_unsubscribed"  # unsubscribed from this campaign only

TERMINAL_STATES = frozenset({"sent", "bounced", "suppressed", "capped", "expired", "failed"})


@dataclass(frozen=True)
class Verdict:
    outcome: DeliveryState
    reason: str
    suppress: bool = False  # add the recipient to the workspace's suppression list
    slows_domain: bool = False  # the receiver pushes back: the domain's rate adapts down


def classify_reply(reply: SmtpReply) -> Verdict:
    """Turn the relay's final answer into an outcome, by its class (retarget.common.smtp_classes).

    Only a `hard` refusal at RCPT or DATA suppresses the address. A refusal at MAIL FROM that is
    not a policy or throttling answer refuses *our* sender address, so it fails the message only.
    """
    code = reply.code
    if code is None:
        return Verdict("deferred", CONNECTION_LOST)
    if 200 <= code < 300 and reply.phase == "done":
        return Verdict("sent", ACCEPTED)
    if not (400 <= code < 600):
        return Verdict("failed", UNEXPECTED_REPLY)
    return _VERDICTS[_class_at_phase(classify(code, reply.message, reply.phase), reply.phase)]


def _class_at_phase(reply_class: ReplyClass, phase: str) -> ReplyClass | str:
    if phase in ("connect", "mail") and reply_class in ("hard", "message"):
        return "sender"
    return reply_class


_VERDICTS: dict[str, Verdict] = {
    "hard": Verdict("bounced", HARD_BOUNCE, suppress=True),
    "transient": Verdict("deferred", SOFT_BOUNCE),
    "throttle": Verdict("deferred", THROTTLED, slows_domain=True),
    "policy": Verdict("failed", POLICY_REFUSAL, slows_domain=True),
    "message": Verdict("failed", MESSAGE_REFUSED),
    "sender": Verdict("failed", SENDER_REFUSED),
    "accepted": Verdict("failed", UNEXPECTED_REPLY),  # a 2xx/3xx before the end: not a delivery
}


def replays_outcome(state: str) -> bool:
    """A duplicate whose send-log row is in `state`: publish that row's outcome again?

    Yes for every recorded outcome (the first publish may be the one that was lost in a
    crash; consumers of deliveries dedupe on message id). No for 'claimed': its outcome is not
    known yet — another worker is mid-delivery, or one died mid-delivery (see README).
    """
    return state != "claimed"


@dataclass(frozen=True)
class RetryPolicy:
    initial_s: float = 300.0
    max_interval_s: float = 4000.0
    max_age_s: float = 72 * 3600.0
    max_attempts: int = 15


def schedule_retry(
    policy: RetryPolicy, attempts_done: int, first_deferred_at: datetime, now: datetime
) -> datetime | Verdict:
    """When to try a deferred message again, or an 'expired' verdict when it is time to give up.

    Exponential backoff (initial, 2×, 4×, … capped at max_interval), bounded by attempts and
    by the age since the first deferral.
    """
    if attempts_done >= policy.max_attempts:
        return Verdict("expired", MAX_ATTEMPTS)
    delay = min(policy.initial_s * 2 ** max(attempts_done - 1, 0), policy.max_interval_s)
    at = now + timedelta(seconds=delay)
    if at - first_deferred_at > timedelta(seconds=policy.max_age_s):
        return Verdict("expired", MAX_AGE)
    return at
