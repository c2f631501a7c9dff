"""Assemble a complete RFC 5322 message from rendered parts and the workspace's identity.

Header values are built from data that came from visitors (names) and tenants; any CR or
LF in them is replaced before it reaches a header, so header injection is impossible.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from retarget.common.workspaces import Workspace
from retarget.composer.render import RenderedEmail


class BadRecipient(ValueError):
    pass


@dataclass(frozen=True)
class Envelope:
    to_email: str
    to_name: str | None
    message_id: str  # RFC 5322 Message-ID, angle brackets included
    date: datetime
    unsubscribe_url: str
    unsubscribe_mailto: str
    feedback_id: str


def _clean(value: str) -> str:
    return " ".join(value.replace("\r", " ").replace("\n", " ").split())


def _address(email: str, name: str | None) -> Address:
    local, at, domain = _clean(email).rpartition("@")
    if not at or not local or not domain or "." not in domain:
        raise BadRecipient("recipient has no valid email address")
    try:
        return Address(display_name=_clean(name or ""), username=local, domain=domain)
    except (ValueError, IndexError) as exc:
        raise BadRecipient(f"recipient address rejected: {exc}") from exc


def build_message(rendered: RenderedEmail, sender: Workspace, envelope: Envelope) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = _address(sender.from_email, sender.from_name)
    msg["To"] = _address(envelope.to_email, envelope.to_name)
    if sender.reply_to:
        msg["Reply-To"] = _address(sender.reply_to, sender.from_name)
    msg["Subject"] = _clean(rendered.subject)
    msg["Date"] = format_datetime(envelope.date)
    msg["Message-ID"] = envelope.message_id
    # RFC 8058 one-click unsubscribe, required by Gmail and Yahoo for bulk senders
    msg["List-Unsubscribe"] = f"<{envelope.unsubscribe_url}>, <{envelope.unsubscribe_mailto}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Feedback-ID"] = _clean(envelope.feedback_id)
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    return msg.as_bytes()
