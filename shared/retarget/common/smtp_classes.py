"""What an SMTP refusal means for the recipient and for us — pure, shared by the sender (replies
during the SMTP conversation) and ingest (RFC 3464 DSNs that arrive later by mail).

The enhanced status code (RFC 3463, `class.subject.detail`, e.g. 5.1.1), which a server that
offers ENHANCEDSTATUSCODES puts at the start of every reply line (RFC 2034), says *why*;
the basic code (550) only says permanent or not. The classes (docs/deliverability.md, "Reply
classes", is the table):

- `hard`: the address or its domain does not exist (5.1.x, 5.4.x) → bounced, suppressed;
- `transient`: try again later (4.x.x, and 5.2.x "mailbox full": a full mailbox empties, so it
  is retried rather than suppressed — except 5.2.1, the provider disabled the account);
- `policy`: the receiver refuses *us* — reputation, blocklist, DMARC/SPF/DKIM (5.7.x, sender
  address 5.1.7/5.1.8) → this message fails, the recipient is **not** suppressed (a blocklisting
  would otherwise wipe out a list), and sending to that domain slows down;
- `throttle`: "too much, too fast" (421, 4.7.x) → retried, and the domain's rate adapts down;
- `message`: this message is refused (too big, bad content or protocol: 5.3.x, 5.5.x, 5.6.x).
"""

from __future__ import annotations

import re
from typing import Literal

ReplyClass = Literal["accepted", "hard", "transient", "policy", "throttle", "message"]

# At the start of a line of the reply text (the basic code and its '-' or ' ' already removed),
# or right after the basic code when the whole line is given ("550-5.1.1 …", a DSN's "Status:").
_ENHANCED = re.compile(r"(?m)^(?:[245]\d\d[ -])?\s*([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
# Words receivers use when they refuse a sender, not an address, without an enhanced code.
_POLICY_WORDS = re.compile(
    r"block ?list|black ?list|blocked|spamhaus|spamcop|barracuda|\bRBL\b|DNSBL|reputation|"
    r"\bspam\b|policy|DMARC|\bSPF\b|DKIM|not authori[sz]ed|poor sender",
    re.IGNORECASE,
)
# "other or undefined" (RFC 3463): says nothing more than the basic code (smtp-sink's refusals
# are 5.3.0) — Outlook answers a
# mailbox that does not exist with "550 5.5.0 Requested action not taken: mailbox unavailable"
_UNDEFINED = {(0, 0), (3, 0), (5, 0)}
_GREYLISTED = re.compile(r"grey ?list|gray ?list", re.IGNORECASE)
_MAILBOX_WORDS = re.compile(
    r"mailbox|user unknown|no such user|unknown user|does not exist|recipient|have an? \S+ account", re.I
)


def enhanced_status(text: str) -> tuple[int, int, int] | None:
    """The first enhanced status code in a reply's text or a DSN's Status field, or None."""
    match = _ENHANCED.search(text)
    return None if match is None else (int(match[1]), int(match[2]), int(match[3]))


def classify(code: int | None, text: str, phase: str = "rcpt") -> ReplyClass:
    """The class of a reply `code` with `text`, given in `phase` (connect, mail, rcpt, data, done).

    `code` None means no reply at all (the caller's "connection lost"): transient. A DSN passes
    the class digit of its Status as the code's hundreds (5 → 500) with phase "dsn".
    """
    if code is None:
        return "transient"
    if 200 <= code < 400:
        return "accepted"
    status = enhanced_status(text)
    if status is not None and status[0] != code // 100:
        status = None  # RFC 3463: the class must agree with the basic code; this one lies
    if 400 <= code < 500:
        if _GREYLISTED.search(text):
            return "transient"  # 4.7.1 too, but a first-contact delay, not a verdict on our rate
        if code == 421 or (status is not None and status[1] == 7):
            return "throttle"
        return "transient"
    if status is not None and status[1:] not in _UNDEFINED:
        return _permanent_by_status(status)
    return _permanent_by_basic_code(code, text, phase)


def _permanent_by_status(status: tuple[int, int, int]) -> ReplyClass:
    _, subject, detail = status
    if subject == 1:
        # 5.1.7/5.1.8: *our* sender address is bad — no reason to suppress the recipient
        return "policy" if detail in (7, 8) else "hard"
    if subject == 2:
        return "hard" if detail == 1 else "transient"  # 5.2.1: account disabled by the provider
    if subject == 4:
        return "hard"  # no route to the domain (5.4.4), or a directory that refuses the address
    if subject == 7:
        return "policy"
    return "message"  # 5.3.x, 5.5.x, 5.6.x: this message (size, content, protocol), not the address


def _permanent_by_basic_code(code: int, text: str, phase: str) -> ReplyClass:
    """A 5xx without a telling enhanced code: by the words, then by the code and the phase."""
    if _POLICY_WORDS.search(text):
        return "policy"
    if phase in ("connect", "mail"):
        return "message"  # our sender address or session is refused (rules: sender_refused)
    if code == 554 and phase != "rcpt":  # "transaction failed" after the content: mostly a filter
        return "hard" if _MAILBOX_WORDS.search(text) else "policy"
    return "hard"  # 5xx to RCPT or DATA, as before the classes existed
