"""The mailbox: the `mailto:` unsubscribe, and bounces and complaints that come back by mail.

Every mail is read off the event loop within a time and size budget (mail_pool.py,
mail_reading.py); hostile mail gets a 5xx or 4xx, never a blocked loop.

Bounce reports (DSNs, to the VERP envelope sender the composer sets) and complaint reports
(ARF, to the feedback-loop address) count only when they prove themselves with the VERP
address's MAC (report_trust.py): then they suppress the recipient of the email they name
(reports.py) and are answered 250. A report that does not prove itself is refused with a
550 and counted (`retarget_ingest_mail_refused_total{reason}`): real reports come from the
null sender, so refusing one makes no bounce, and the refusal says where reports go. A
`bounces+…` recipient whose MAC is wrong is refused at RCPT, as BATV does. Since each answer
tells whether a guessed MAC was right, wrong MACs draw on a budget (1/s, 100 at once, per
process): while it is spent, no MAC is checked and bounce addresses get a 451.

Everything else is an unsubscribe request: every email's List-Unsubscribe header carries,
beside the one-click https link, `mailto:unsubscribe@<sender's domain>?subject=unsubscribe%20<token>`
(composer); some mail clients offer only that. A message whose subject carries a genuine
unsubscribe token unsubscribes its recipient from everything, exactly as the one-click link
does: PostgreSQL first, then the `Unsubscribed` event (feedback.py). When the unsubscribe
can't be recorded right now the answer is a 4xx, so the sending server keeps the message and
tries again: an unsubscribe sent by mail is never lost.

Nothing else in the message is used — not the From address, which anyone can forge.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from retarget.common.bounces import Report
from retarget.common.faults import crash_point
from retarget.ingest import metrics
from retarget.ingest.errors import Unavailable
from retarget.ingest.feedback import LinkFeedback
from retarget.ingest.links import NotOurLink
from retarget.ingest.mail_pool import MailPool, PoolBusy, TooSlow
from retarget.ingest.mail_reading import Mail, MailTooComplex, read_mail
from retarget.ingest.ratelimit import TokenBucket
from retarget.ingest.report_trust import Refused, is_bounce_address, judge, verified_entry
from retarget.ingest.reports import Reports

log = logging.getLogger(__name__)

RECORDED = "250 2.0.0 Unsubscribed: no more marketing email from this sender"
REPORT_NOTED = "250 2.0.0 Report received"
NO_TOKEN = "550 5.7.1 No unsubscribe token in the subject; use the unsubscribe link in the email"
NOT_OURS = "550 5.7.1 Not a valid unsubscribe request; use the unsubscribe link in a recent email"
TRY_LATER = "451 4.3.0 The unsubscribe could not be recorded just now; please try again later"
REPORT_LATER = "451 4.3.0 The report could not be recorded just now; please try again later"
NO_SUCH_BOUNCE_ADDRESS = "550 5.1.1 No such bounce address"
REFUSED: dict[str, str] = {
    "dsn_not_to_bounce_address": "550 5.7.1 Delivery reports are accepted only at the bounce "
    "address the email was sent from",
    "arf_not_to_feedback_address": "550 5.7.1 Complaint reports are accepted only at the "
    "feedback-loop address",
    "arf_unverified": "550 5.7.1 The reported email's envelope sender is not one of our bounce "
    "addresses; the report can't be matched",
}
TOO_COMPLEX = "554 5.6.0 MIME structure too complex: {}"
TOO_SLOW = "451 4.3.2 The message took too long to read; please try again later"
UNREADABLE = "554 5.6.0 The message could not be read"
BUSY = "451 4.3.2 Too many messages being read; please try again later"
BAD_MAC_BUDGET = "451 4.7.1 Too many bounce addresses that do not verify; please try again later"


class UnsubscribeMailbox:
    """An aiosmtpd handler: a report, or an unsubscribe request, answered at DATA."""

    def __init__(
        self,
        links: LinkFeedback,
        reports: Reports | None = None,
        secret: bytes | None = None,
        *,
        pool: MailPool,
        feedback_address: str = "fbl@localhost",
        bad_macs_per_s: float = 1.0,
        bad_mac_burst: int = 100,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._links, self._reports, self._secret = links, reports, secret
        self._pool, self._feedback_address = pool, feedback_address
        # Whether a VERP MAC verifies is answered at once (550 or 250), so each RCPT is a guess
        # of its 40 bits: wrong MACs draw on one budget, and while it is empty no MAC is checked
        # (every bounce address, right or wrong, gets a 451; real bounces are retried).
        self._monotonic = monotonic
        self._bad_macs = TokenBucket(bad_macs_per_s, bad_mac_burst, monotonic())

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if is_bounce_address(address):
            if not self._mac_budget_left():
                return _refuse("bad_mac_budget", BAD_MAC_BUDGET)
            if verified_entry(address, self._secret) is None:
                self._spend_bad_mac()
                return _refuse("bad_bounce_address", NO_SUCH_BOUNCE_ADDRESS)
        envelope.rcpt_tos.append(address)  # what aiosmtpd does itself without a handle_RCPT
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content or b""
        try:
            mail: Mail = await self._pool.run(read_mail, raw)
        except MailTooComplex as exc:
            return _refuse("mime_too_complex", TOO_COMPLEX.format(exc))
        except TooSlow:
            return _refuse("read_too_slow", TOO_SLOW)
        except PoolBusy:
            return _refuse("busy", BUSY)
        except Exception:  # a parser bug: a clear refusal, not aiosmtpd's "500" with the error text
            log.exception("a mail could not be read")
            return _refuse("unreadable", UNREADABLE)
        if mail.report.kind == "complaint" and not self._mac_budget_left():
            return _refuse("bad_mac_budget", BAD_MAC_BUDGET)  # its envelope sender's MAC is a guess too
        verdict = judge(
            mail.report,
            list(envelope.rcpt_tos or []),
            secret=self._secret,
            feedback_address=self._feedback_address,
        )
        if isinstance(verdict, Refused):
            if verdict.reason == "arf_unverified":
                self._spend_bad_mac()
            return _refuse(verdict.reason, REFUSED[verdict.reason])
        if verdict is not None:
            return await self._report(mail.report, verdict.message_id, verdict.sending_domain)
        return await self._unsubscribe(mail.token)

    def _mac_budget_left(self) -> bool:
        self._bad_macs.take(0, self._monotonic())  # refills it
        return self._bad_macs.tokens >= 1

    def _spend_bad_mac(self) -> None:
        self._bad_macs.take(1, self._monotonic())

    async def _report(self, report: Report, message_id: str | None, domain: str = "") -> str:
        kind = report.kind
        if self._reports is None or kind not in ("hard_bounce", "complaint") or message_id is None:
            metrics.count_tracking("report_mail", kind)
            return REPORT_NOTED
        source = "dsn" if kind == "hard_bounce" else "arf"
        try:
            done = await self._reports.record(message_id, kind, source, report.status, domain)
        except Unavailable:
            metrics.count_tracking("report_mail", "unavailable")
            return REPORT_LATER  # the reporting server keeps it and tries again
        crash_point("ingest.mailbox.after_report_write")
        if done is None:
            metrics.count_tracking("report_mail", f"{kind}_unknown_message")
            return REPORT_NOTED
        metrics.count_tracking("report_mail", kind)
        if done.new:
            action = "bounced" if kind == "hard_bounce" else "complained"
            metrics.count_engagement(done.workspace_id, done.campaign, action)
        return REPORT_NOTED

    async def _unsubscribe(self, token: str | None) -> str:
        if token is None:
            metrics.count_tracking("unsubscribe_mail", "no_token")
            return NO_TOKEN
        try:
            done = await self._links.unsubscribe(token, scope="all", source="mailto")
        except NotOurLink:
            metrics.count_tracking("unsubscribe_mail", "invalid")
            return NOT_OURS
        except Unavailable:
            metrics.count_tracking("unsubscribe_mail", "unavailable")
            log.warning("an unsubscribe by mail could not be recorded; the sender will retry")
            return TRY_LATER
        metrics.count_tracking("unsubscribe_mail", "recorded" if done.new else "replayed")
        return RECORDED


def _refuse(reason: str, answer: str) -> str:
    metrics.count_mail_refused(reason)
    return answer
