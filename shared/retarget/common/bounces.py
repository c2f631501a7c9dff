"""Bounces and complaints that arrive by mail, after the relay said 250 — pure, no I/O.

A relay (smarthost) accepts a message and tries the recipient's server later, so most
hard bounces reach the sender as a delivery status notification (RFC 3464) mailed to the
envelope sender, and complaints ("this is spam") as ARF reports (RFC 5965) from the mailbox
providers' feedback loops. To tell which email a DSN is about, the composer sets the
envelope sender to a VERP address naming the send-log entry, with a short MAC so nobody
can suppress an address by mailing us a made-up bounce:

    bounces+<message id>.<mac>@<sender's domain>

An ARF report carries the original message's headers; its Message-ID names the entry.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

BOUNCE_LOCAL_PREFIX = "bounces+"
_MAC_HEX = 10  # 40 bits: forging one means ~10^12 tries, each a mail we'd receive
_MAX_LOCAL_PART = 64  # RFC 5321
_MESSAGE_ID = re.compile(r"<?(m-[0-9a-f]{8,64})@", re.IGNORECASE)


def _mac(message_id: str, secret: bytes) -> str:
    return hmac.new(secret, b"bounce\x1f" + message_id.encode(), hashlib.sha256).hexdigest()[:_MAC_HEX]


def bounce_address(message_id: str, domain: str, secret: bytes) -> str | None:
    """The VERP envelope sender for `message_id`, or None when it would not fit in a local part."""
    local = f"{BOUNCE_LOCAL_PREFIX}{message_id}.{_mac(message_id, secret)}"
    return f"{local}@{domain}" if len(local) <= _MAX_LOCAL_PART else None


def message_id_of_bounce_address(address: str, secret: bytes) -> str | None:
    """The send-log message id a VERP address names, if it is one of ours (MAC checked)."""
    local = address.rpartition("@")[0] if "@" in address else address
    if not local.lower().startswith(BOUNCE_LOCAL_PREFIX):
        return None
    # our ids and MACs are lower case; a server on the way may have changed that
    message_id, _, mac = local[len(BOUNCE_LOCAL_PREFIX) :].lower().rpartition(".")
    if not message_id or not hmac.compare_digest(mac, _mac(message_id, secret)):
        return None
    return message_id


@dataclass(frozen=True)
class Report:
    kind: str  # "hard_bounce" | "soft_bounce" | "complaint" | "other"
    status: str = ""  # the DSN's Status (5.1.1) or the ARF Feedback-Type (abuse)
    message_id: str | None = None  # from the returned original's Message-ID, if it came back


def read_report(raw: bytes) -> Report:
    """What a mailed report says: a failed delivery (5.x.x hard, 4.x.x soft), a complaint, or other."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    if not isinstance(message, EmailMessage) or message.get_content_type() != "multipart/report":
        return Report("other")
    report_type = str(message.get_param("report-type", "") or "").lower()
    parts = list(message.iter_parts())
    if report_type == "delivery-status":
        kind, status = _delivery_status(parts)
    elif report_type == "feedback-report":
        kind, status = _feedback(parts)
    else:
        return Report("other")
    return Report(kind, status, _original_message_id(parts)) if kind else Report("other")


def _fields(part: Any) -> list[dict[str, str]]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):  # the parser split message/delivery-status into blocks already
        blocks = payload
    else:
        text = (part.get_payload(decode=True) or b"").replace(b"\r\n", b"\n")
        parse = BytesParser(policy=policy.default).parsebytes
        blocks = [parse(block, headersonly=True) for block in text.split(b"\n\n")]
    return [{k.lower(): str(v).strip() for k, v in block.items()} for block in blocks]


def _delivery_status(parts: list[Any]) -> tuple[str, str]:
    for part in parts:
        if part.get_content_type() != "message/delivery-status":
            continue
        for fields in _fields(part):
            action, status = fields.get("action", "").lower(), fields.get("status", "")
            if action == "failed" and status.startswith("5"):
                return "hard_bounce", status
            if action in ("failed", "delayed") and status.startswith("4"):
                return "soft_bounce", status
    return "", ""


def _feedback(parts: list[Any]) -> tuple[str, str]:
    for part in parts:
        if part.get_content_type() == "message/feedback-report":
            for fields in _fields(part):
                if fields.get("feedback-type"):
                    return "complaint", fields["feedback-type"].lower()
    return "", ""


def _original_message_id(parts: list[Any]) -> str | None:
    """The send-log message id in the returned original's Message-ID (ours: <m-…@domain>)."""
    for part in parts:
        if part.get_content_type() not in ("message/rfc822", "text/rfc822-headers"):
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload:  # message/rfc822: the parsed original
            header = str(payload[0].get("message-id", ""))
        else:
            text = part.get_payload(decode=True) or b""
            header = str(
                BytesParser(policy=policy.default).parsebytes(text, headersonly=True).get("message-id", "")
            )
        found = _MESSAGE_ID.search(header)
        if found:
            return found.group(1).lower()
    return None
