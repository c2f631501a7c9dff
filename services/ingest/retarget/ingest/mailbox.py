"""The mailbox: the `mailto:` unsubscribe, and bounces and complaints that come back by mail.

Bounce reports (DSNs, to the VERP envelope sender the composer sets) and complaint reports
(ARF, from the mailbox providers' feedback loops) are recognised first: they suppress the
recipient of the email they name (reports.py) and are answered 250, whatever they say — a
refused bounce only makes another bounce. Everything else is an unsubscribe request:

Every email's List-Unsubscribe header carries, beside the one-click https link,
`mailto:unsubscribe@<sender's domain>?subject=unsubscribe%20<token>` (composer); some mail
clients offer only that. The platform routes that address to this listener (see
docs/operations.md). A message whose subject carries a genuine unsubscribe token
unsubscribes its recipient from everything, exactly as the one-click link does: PostgreSQL
first, then the `Unsubscribed` event (feedback.py). The SMTP answer says what happened,
and when the unsubscribe can't be recorded right now it is a 4xx, so the sending server
keeps the message and tries again: an unsubscribe sent by mail is never lost.

Nothing else in the message is used — not the From address, which anyone can forge.
"""

from __future__ import annotations

import logging
import re
from email import policy
from email.parser import BytesParser
from typing import Any

from retarget.common.bounces import Report, message_id_of_bounce_address, read_report
from retarget.ingest import metrics
from retarget.ingest.errors import Unavailable
from retarget.ingest.feedback import LinkFeedback
from retarget.ingest.links import NotOurLink
from retarget.ingest.reports import Reports

log = logging.getLogger(__name__)

# the subject the composer writes: "unsubscribe <token>"; a reply adds "Re: " in front
_TOKEN_IN_SUBJECT = re.compile(r"\bunsubscribe\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)", re.IGNORECASE)

RECORDED = "250 2.0.0 Unsubscribed: no more marketing email from this sender"
NO_TOKEN = "550 5.7.1 No unsubscribe token in the subject; use the unsubscribe link in the email"
NOT_OURS = "550 5.7.1 Not a valid unsubscribe request; use the unsubscribe link in a recent email"
TRY_LATER = "451 4.3.0 The unsubscribe could not be recorded just now; please try again later"


def token_from(message: bytes) -> str | None:
    """The unsubscribe token in the message's subject, if any (headers only are parsed)."""
    headers = BytesParser(policy=policy.default).parsebytes(message, headersonly=True)
    try:
        subject = str(headers.get("subject") or "")
    except (ValueError, TypeError):  # a header the parser can't make sense of
        return None
    found = _TOKEN_IN_SUBJECT.search(subject)
    return found.group(1) if found else None


REPORT_NOTED = "250 2.0.0 Report received"


class UnsubscribeMailbox:
    """An aiosmtpd handler: a report, or an unsubscribe request, answered at DATA."""

    def __init__(
        self, links: LinkFeedback, reports: Reports | None = None, secret: bytes | None = None
    ) -> None:
        self._links, self._reports, self._secret = links, reports, secret

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content or b""
        named = self._named_by_envelope(envelope.rcpt_tos or [])
        report = read_report(raw)
        if report.kind != "other" or named is not None:
            return await self._report(report, named or report.message_id)
        return await self._unsubscribe(raw)

    def _named_by_envelope(self, recipients: list[str]) -> str | None:
        if self._secret is None:
            return None
        return next(filter(None, (message_id_of_bounce_address(r, self._secret) for r in recipients)), None)

    async def _report(self, report: Report, message_id: str | None) -> str:
        kind = report.kind
        if self._reports is None or kind not in ("hard_bounce", "complaint") or message_id is None:
            metrics.count_tracking("report_mail", kind if message_id else f"{kind}_unnamed")
            return REPORT_NOTED
        source = "dsn" if kind == "hard_bounce" else "arf"
        try:
            done = await self._reports.record(message_id, kind, source, report.status)
        except Unavailable:
            metrics.count_tracking("report_mail", "unavailable")
            return TRY_LATER  # the reporting server keeps it and tries again
        if done is None:
            metrics.count_tracking("report_mail", f"{kind}_unknown_message")
            return REPORT_NOTED
        metrics.count_tracking("report_mail", kind)
        if done.new:
            action = "bounced" if kind == "hard_bounce" else "complained"
            metrics.count_engagement(done.workspace_id, done.campaign, action)
        return REPORT_NOTED

    async def _unsubscribe(self, raw: bytes) -> str:
        token = token_from(raw)
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
