"""Reading a mail that reached the mailbox — pure, no I/O, safe on hostile input.

Everything here runs in a worker thread (mail_pool.py), never on the event loop, and within
bounds that make its worst case small:

* the message is at most MAILBOX_MAX_BYTES (aiosmtpd refuses more at DATA with a 552);
* it is parsed with the compat32 policy (retarget.common.bounces.parse_mail), which leaves
  header values as text instead of running the recursive header parser over them;
* a message with more than MAX_MIME_ENTITIES Content-Type headers is refused before parsing:
  the parser recurses once per nested multipart or message part, and each level of nesting
  needs a Content-Type of its own, so this bounds the depth (a deeper one overflowed the
  stack) and the work;
* only the first MAX_SUBJECT_CHARS of the subject are decoded: a token is short.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.header import decode_header
from email.message import Message

from retarget.common.bounces import Report, parse_mail, report_of

MAX_MIME_ENTITIES = 64  # a DSN or ARF report has 4 or 5; an unsubscribe reply a handful
MAX_SUBJECT_CHARS = 2048

# the subject the composer writes: "unsubscribe <token>"; a reply adds "Re: " in front
_TOKEN_IN_SUBJECT = re.compile(r"\bunsubscribe\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)", re.IGNORECASE)
_CONTENT_TYPE_LINE = re.compile(rb"^content-type:", re.IGNORECASE | re.MULTILINE)
_FOLD = re.compile(r"\r?\n(?=[ \t])")


class MailTooComplex(ValueError):
    """Refused unread: nested or split beyond what any report or reply needs."""


@dataclass(frozen=True)
class Mail:
    report: Report
    token: str | None  # the unsubscribe token in the subject, if any


def read_mail(raw: bytes) -> Mail:
    """The report a mail is, and the unsubscribe token its subject carries; MailTooComplex."""
    if len(_CONTENT_TYPE_LINE.findall(raw)) > MAX_MIME_ENTITIES:
        raise MailTooComplex(f"more than {MAX_MIME_ENTITIES} MIME parts or levels of nesting")
    try:
        message = parse_mail(raw)
        return Mail(report_of(message), token_of(message))
    except RecursionError:  # not expected below the limit; never a traceback to the client
        raise MailTooComplex("MIME parts nested too deeply") from None


def token_from(raw: bytes) -> str | None:
    """The unsubscribe token in a raw message's subject (the body is never read)."""
    return read_mail(raw).token


def token_of(message: Message) -> str | None:
    found = _TOKEN_IN_SUBJECT.search(subject_of(message))
    return found.group(1) if found else None


def subject_of(message: Message) -> str:
    """The subject's first MAX_SUBJECT_CHARS, unfolded, its encoded words (RFC 2047) decoded."""
    value = _FOLD.sub("", str(message.get("subject") or "")[:MAX_SUBJECT_CHARS])
    try:
        pieces = decode_header(value)
    except Exception:  # a malformed encoded word: the text as it came
        return value
    return "".join(_text(piece, charset) for piece, charset in pieces)


def _text(piece: bytes | str, charset: str | None) -> str:
    if isinstance(piece, str):
        return piece
    try:
        return piece.decode(charset or "ascii", "replace")
    except LookupError:  # a charset Python doesn't know
        return piece.decode("latin-1")
