"""Bounces and complaints that arrive by mail, after the relay said 250 — pure, no I/O.

A relay (smarthost) accepts a message and tries the recipient's server later, so most
hard bounces reach the sender as a delivery status notification (RFC 3464) mailed to the
envelope sender, and complaints ("this is spam") as ARF reports (RFC 5965) from the mailbox
providers' feedback loops. To tell which email a DSN is about, the composer sets the
envelope sender to a VERP address naming the send-log entry, with a short MAC so nobody
can suppress an address by mailing us a made-up bounce:

    bounces+<message id>.<mac>@<sender's domain>

An ARF report (RFC 5965) carries the reported email's envelope sender (Original-Mail-From,
or the original's Return-Path): our VERP address, so a complaint proves itself with the same
MAC; its Message-ID is only a cross-check, since every recipient can read it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import BytesParser

from retarget.common.smtp_classes import classify

BOUNCE_LOCAL_PREFIX = "bounces+"
_MAC_HEX = 10  # 40 bits: ~10^12 tries, and the mailbox checks wrong MACs at 1/s (mailbox.py)
_MAX_LOCAL_PART = 64  # RFC 5321
_MESSAGE_ID = re.compile(r"<?(m-[0-9a-f]{8,64})@", re.IGNORECASE)
_VERP = re.compile(r"bounces\+[A-Za-z0-9._-]{1,80}@[A-Za-z0-9.-]{1,253}", re.IGNORECASE)
_MAX_FIELD = 2048  # of a header searched for an id or an address: ours are far shorter


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
    kind: str  # "hard_bounce" | "soft_bounce" | "policy_refusal" | "message_refused" | "complaint" | "other"
    status: str = ""  # the DSN's Status (5.1.1) or the ARF Feedback-Type (abuse)
    message_id: str | None = None  # from the returned original's Message-ID, if it came back
    # a complaint: the reported email's envelope sender (ARF's Original-Mail-From, else the
    # original's Return-Path) — our VERP address, whose MAC proves the report is about our email
    envelope_sender: str | None = None


def parse_mail(raw: bytes) -> Message:
    """The message, parsed with the compat32 policy: it leaves header values as text.

    The default policy parses every header it is asked for (Content-Type above all, which the
    parser itself asks for in every part) with a recursive-descent parser that takes seconds
    on a long hostile header and overflows the stack on nested comments; nothing here needs
    more than a content type, a parameter and a few plain fields.
    """
    return BytesParser(policy=policy.compat32).parsebytes(raw)


def read_report(raw: bytes) -> Report:
    """What a mailed report says: a failed delivery (5.x.x hard, 4.x.x soft), a complaint, or other."""
    return report_of(parse_mail(raw))


def report_of(message: Message) -> Report:
    if message.get_content_type() != "multipart/report" or not message.is_multipart():
        return Report("other")
    report_type = str(message.get_param("report-type", "") or "").lower()
    parts = [p for p in message.get_payload() if isinstance(p, Message)]
    if report_type == "delivery-status":
        kind, status = _delivery_status(parts)
        return Report(kind, status, _original_message_id(parts)) if kind else Report("other")
    if report_type == "feedback-report":
        fields = _feedback_fields(parts)
        if not fields.get("feedback-type"):
            return Report("other")
        sender = _verp_in(fields.get("original-mail-from", "")) or _verp_in(
            _original_header(parts, "return-path")
        )
        return Report("complaint", fields["feedback-type"].lower(), _original_message_id(parts), sender)
    return Report("other")


def _fields(part: Message) -> list[dict[str, str]]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):  # the parser split message/delivery-status into blocks already
        blocks = [block for block in payload if isinstance(block, Message)]
    else:
        text = part.get_payload(decode=True)
        text = (text if isinstance(text, bytes) else b"").replace(b"\r\n", b"\n")
        parse = BytesParser(policy=policy.compat32).parsebytes
        blocks = [parse(block, headersonly=True) for block in text.split(b"\n\n")]
    return [{k.lower(): str(v).strip() for k, v in block.items()} for block in blocks]


def _delivery_status(parts: list[Message]) -> tuple[str, str]:
    for part in parts:
        if part.get_content_type() != "message/delivery-status":
            continue
        for fields in _fields(part):
            action, status = fields.get("action", "").lower(), fields.get("status", "")
            if action == "failed" and status.startswith("5"):
                return _DSN_KINDS[_dsn_class(status, fields.get("diagnostic-code", ""))], status
            if action in ("failed", "delayed") and status.startswith("4"):
                return "soft_bounce", status
    return "", ""


# A permanent failure by its class (retarget.common.smtp_classes): only a `hard` one suppresses.
_DSN_KINDS = {
    "hard": "hard_bounce",
    "policy": "policy_refusal",  # 5.7.x: the receiver refused us, not the address
    "transient": "soft_bounce",  # 5.2.x mailbox full
    "throttle": "soft_bounce",
    "message": "message_refused",  # 5.3.x/5.6.x: this message (size, content)
    "accepted": "soft_bounce",
}
_SMTP_DIAGNOSTIC = re.compile(r"^\s*smtp\s*;\s*([245]\d\d)\b", re.IGNORECASE)


def _dsn_class(status: str, diagnostic: str) -> str:
    """The class of a failed DSN: its Status, with the remote server's reply (Diagnostic-Code
    `smtp; 550 …`) for the basic code and the words when the Status says little (5.0.0)."""
    remote = _SMTP_DIAGNOSTIC.match(diagnostic[:_MAX_FIELD])
    code = int(remote[1]) if remote and remote[1][0] == "5" else 550
    text = status.strip() + "\n" + diagnostic[:_MAX_FIELD].partition(";")[2]
    return classify(code, text, "dsn")


def _feedback_fields(parts: list[Message]) -> dict[str, str]:
    for part in parts:
        if part.get_content_type() == "message/feedback-report":
            for fields in _fields(part):
                if fields.get("feedback-type"):
                    return fields
    return {}


def _original_header(parts: list[Message], name: str) -> str:
    """A header of the returned original (message/rfc822, or text/rfc822-headers), or ""."""
    for part in parts:
        if part.get_content_type() not in ("message/rfc822", "text/rfc822-headers"):
            continue
        payload = part.get_payload()
        if isinstance(payload, list):  # message/rfc822: the parsed original
            original = payload[0] if payload else None
            return str(original.get(name, "")) if isinstance(original, Message) else ""
        text = part.get_payload(decode=True)
        headers = BytesParser(policy=policy.compat32).parsebytes(
            text if isinstance(text, bytes) else b"", headersonly=True
        )
        return str(headers.get(name, ""))
    return ""


def _original_message_id(parts: list[Message]) -> str | None:
    """The send-log message id in the returned original's Message-ID (ours: <m-…@domain>)."""
    found = _MESSAGE_ID.search(_original_header(parts, "message-id")[:_MAX_FIELD])
    return found.group(1).lower() if found else None


def _verp_in(field: str) -> str | None:
    found = _VERP.search(field[:_MAX_FIELD])
    return found.group(0) if found else None
