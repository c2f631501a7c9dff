"""Reply classes against what real receivers answer (texts as the sender's wire reader keeps
them: the basic code and its separator removed from each line, lines joined by newlines)."""

from __future__ import annotations

import pytest

from retarget.common.smtp_classes import classify, enhanced_status

GMAIL_NO_SUCH_USER = (
    "5.1.1 The email account that you tried to reach does not exist. Please try\n"
    "5.1.1 double-checking the recipient's email address for typos or\n"
    "5.1.1 unnecessary spaces. For more information, go to\n"
    "5.1.1  https://support.google.com/mail/?p=NoSuchUser d9-20020a05 - gsmtp"
)
GMAIL_DMARC = (
    "5.7.26 Unauthenticated email from shop.example is not accepted due to domain's\n"
    "5.7.26 DMARC policy. Please contact the administrator of shop.example domain if\n"
    "5.7.26 this was a legitimate mail. To learn about the DMARC initiative, go to\n"
    "5.7.26  https://support.google.com/mail/?p=DmarcRejection a1si - gsmtp"
)
GMAIL_RATE = (
    "4.7.28 Gmail has detected an unusual rate of unsolicited mail originating\n"
    "4.7.28 from your IP address. To protect our users from spam, mail sent from your IP\n"
    "4.7.28 address has been temporarily rate limited. - gsmtp"
)
GMAIL_OVER_QUOTA = "4.2.2 The recipient's inbox is out of storage space. Please direct the\n4.2.2 recipient to\n4.2.2  https://support.google.com/mail/?p=OverQuotaTemp - gsmtp"
GMAIL_FULL_PERMANENT = "5.2.2 The email account that you tried to reach is over quota. - gsmtp"
GMAIL_DISABLED = "5.2.1 The email account that you tried to reach is disabled. - gsmtp"
OUTLOOK_BLOCK_LIST = (
    "5.7.1 Unfortunately, messages from [203.0.113.7] weren't sent. Please contact your Internet "
    "service provider since part of their network is on our block list (S3150)."
)
OUTLOOK_RATE = "4.7.650 The mail server [203.0.113.7] has been temporarily rate limited due to IP reputation."
OUTLOOK_NO_MAILBOX = "5.5.0 Requested action not taken: mailbox unavailable (S2017062302)."
OUTLOOK_ACCESS_DENIED = "5.4.1 Recipient address rejected: Access denied. AS(201806281)"
YAHOO_TSS04 = (
    "4.7.0 [TSS04] Messages from 203.0.113.7 temporarily deferred due to unexpected volume or "
    "user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes"
)
YAHOO_POLICY = (
    "5.7.9 Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes"
)
YAHOO_NO_ACCOUNT = "delivery error: dd This user doesn't have a yahoo.com account (x@yahoo.com) [0] - mta1"
SPAMHAUS_BARE = "Service unavailable; Client host [203.0.113.7] blocked using zen.spamhaus.org"
POSTFIX_UNKNOWN = "5.1.1 <a@example.com>: Recipient address rejected: User unknown in virtual mailbox table"
NULL_MX = "5.1.10 Recipient address has null MX"


@pytest.mark.parametrize(
    ("code", "text", "phase", "expected"),
    [
        (550, GMAIL_NO_SUCH_USER, "rcpt", "hard"),
        (550, GMAIL_DMARC, "done", "policy"),
        (421, GMAIL_RATE, "rcpt", "throttle"),
        (452, GMAIL_OVER_QUOTA, "rcpt", "transient"),
        (552, GMAIL_FULL_PERMANENT, "rcpt", "transient"),  # a full mailbox empties: retried
        (550, GMAIL_DISABLED, "rcpt", "hard"),
        (550, OUTLOOK_BLOCK_LIST, "rcpt", "policy"),
        (451, OUTLOOK_RATE, "rcpt", "throttle"),
        (550, OUTLOOK_NO_MAILBOX, "rcpt", "hard"),  # 5.5.0 says nothing: the words decide
        (550, OUTLOOK_ACCESS_DENIED, "rcpt", "hard"),
        (421, YAHOO_TSS04, "mail", "throttle"),
        (554, YAHOO_POLICY, "done", "policy"),
        (554, YAHOO_NO_ACCOUNT, "done", "hard"),
        (554, SPAMHAUS_BARE, "rcpt", "policy"),
        (550, SPAMHAUS_BARE, "rcpt", "policy"),  # the words, not the 550, decide
        (550, POSTFIX_UNKNOWN, "rcpt", "hard"),
        (556, NULL_MX, "rcpt", "hard"),
        (451, "4.7.1 Greylisted, try again later", "rcpt", "transient"),
        (421, "Service not available, closing transmission channel", "connect", "throttle"),
        (450, "4.2.0 Mailbox busy", "rcpt", "transient"),
        (552, "5.3.4 Message size exceeds fixed limit", "done", "message"),
        (553, "5.1.8 Sender address domain does not exist", "mail", "policy"),
        (550, "no such user", "rcpt", "hard"),  # no enhanced code: by the basic code and phase
        (554, "Transaction failed", "done", "policy"),  # 554 at DATA, no mailbox words
        (554, "mailbox unavailable", "done", "hard"),
        (550, "4.7.1 contradicts its basic code", "rcpt", "hard"),  # a lying enhanced code is ignored
        (500, "5.3.0 Error: command failed", "rcpt", "hard"),  # smtp-sink -f: undefined, by the phase
        (554, "Relay access denied", "rcpt", "hard"),  # 554 at RCPT: as before the classes
        (553, "sender refused", "mail", "message"),
        (None, "dropped", "data", "transient"),
        (250, "2.0.0 Ok", "done", "accepted"),
    ],
)
def test_real_replies_fall_in_their_class(code: int | None, text: str, phase: str, expected: str) -> None:
    assert classify(code, text, phase) == expected


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("5.1.1 The email account", (5, 1, 1)),
        ("550-5.7.26 Unauthenticated", (5, 7, 26)),  # a whole reply line, basic code included
        ("first line\n4.7.650 rate limited", (4, 7, 650)),
        ("5.1.10 null MX", (5, 1, 10)),
        ("version 5.1.1.2 of the software", None),  # not at the start of a line
        ("5.1.1.4 no", None),
        ("Ok", None),
    ],
)
def test_the_enhanced_code_is_read_where_rfc_2034_puts_it(
    text: str, status: tuple[int, int, int] | None
) -> None:
    assert enhanced_status(text) == status
