"""The `mailto:` unsubscribe: mail sent to the address in List-Unsubscribe, answered over SMTP.

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

from retarget.ingest import metrics
from retarget.ingest.errors import Unavailable
from retarget.ingest.feedback import LinkFeedback
from retarget.ingest.links import NotOurLink

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


class UnsubscribeMailbox:
    """An aiosmtpd handler: every message is one unsubscribe request, answered at DATA."""

    def __init__(self, links: LinkFeedback) -> None:
        self._links = links

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        token = token_from(envelope.original_content or envelope.content or b"")
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
