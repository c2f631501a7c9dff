"""Which send-log entry a report mailed to us may touch — pure rules, no I/O.

Message ids are in every email and every tracking link, so a report that names an entry only
by the Message-ID it quotes proves nothing: anyone could suppress anyone. A report counts
only when it carries the MAC only we can make:

* a DSN (bounce) only when it is addressed to the VERP envelope sender of that email,
  `bounces+<message id>.<mac>@…` — where real bounces go — and the MAC verifies; the entry
  is the one that address names;
* an ARF complaint only when it is addressed to the feedback-loop address (the one
  registered with the mailbox providers) and the reported email's envelope sender, which
  ARF returns (Original-Mail-From, or the original's Return-Path), is our VERP address with
  a MAC that verifies; the entry is the one that address names.

Anything else claiming to be a report is refused (`Refused.reason`, a bounded label).
"""

from __future__ import annotations

from dataclasses import dataclass

from retarget.common.bounces import BOUNCE_LOCAL_PREFIX, Report, message_id_of_bounce_address
from retarget.common.reputation import sending_domain

REPORT_KINDS = ("hard_bounce", "soft_bounce", "policy_refusal", "message_refused", "complaint")


@dataclass(frozen=True)
class Refused:
    reason: (
        str  # bad_bounce_address | dsn_not_to_bounce_address | arf_not_to_feedback_address | arf_unverified
    )


@dataclass(frozen=True)
class Trusted:
    message_id: str | None  # None: a report from our bounce address about nothing we can use
    sending_domain: str = ""  # the verified VERP address's domain: the reputation counts' domain


def is_bounce_address(address: str) -> bool:
    return address.lower().startswith(BOUNCE_LOCAL_PREFIX)


def verified_entry(address: str, secret: bytes | None) -> str | None:
    """The message id a VERP address names, if its MAC verifies."""
    return message_id_of_bounce_address(address, secret) if secret is not None else None


def judge(
    report: Report, recipients: list[str], *, secret: bytes | None, feedback_address: str
) -> Trusted | Refused | None:
    """What a mail may do as a report; None: it is no report and not to our bounce address."""
    verified = [(r, entry) for r in recipients if (entry := verified_entry(r, secret)) is not None]
    named, named_address = (verified[0][1], verified[0][0]) if verified else (None, "")
    if report.kind == "complaint":
        if feedback_address.lower() not in (r.lower() for r in recipients):
            return Refused("arf_not_to_feedback_address")
        entry = verified_entry(report.envelope_sender or "", secret)
        if entry is None:
            return Refused("arf_unverified")
        return Trusted(entry, sending_domain(report.envelope_sender or ""))
    if report.kind in REPORT_KINDS and named is None:
        return Refused("dsn_not_to_bounce_address")
    if named is not None:  # a bounce, or anything else mailed to the bounce address (auto-replies)
        return Trusted(named, sending_domain(named_address))
    return None
