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
* so is one with a Content-Type header over MAX_CONTENT_TYPE_BYTES (the parser reads its
  parameters in quadratic time: 240 KB of empty quoted strings took 3-4 s) or more than
  MAX_BOUNDARY_LINES lines starting with "--" (an upper bound on the parts: 40,000 empty
  parts of a multipart/digest took ~2 s);
* these are counted on the parser's lines, which a bare CR ends too (SMTP's end at CRLF only);
* only the first MAX_SUBJECT_CHARS of the subject are decoded: a token is short.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.header import decode_header
from email.message import Message

from retarget.common.bounces import Report, parse_mail, report_of

MAX_MIME_ENTITIES = 64  # a DSN or ARF report has 4 or 5; an unsubscribe reply a handful
MAX_CONTENT_TYPE_BYTES = 4096  # ours are under 200
MAX_BOUNDARY_LINES = 1024
MAX_SUBJECT_CHARS = 2048

# the subject the composer writes: "unsubscribe <token>"; a reply adds "Re: " in front
_TOKEN_IN_SUBJECT = re.compile(r"\bunsubscribe\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)", re.IGNORECASE)
_CONTENT_TYPE_FIELD = re.compile(rb"^content-type:[^\n]*(?:\n[ \t][^\n]*)*", re.IGNORECASE | re.MULTILINE)
_BOUNDARY_LINE = re.compile(rb"^--", re.MULTILINE)
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_LINE_END = re.compile(rb"\r\n?")


class MailTooComplex(ValueError):
    """Refused unread: nested or split beyond what any report or reply needs."""


@dataclass(frozen=True)
class Mail:
    report: Report
    token: str | None  # the unsubscribe token in the subject, if any


def read_mail(raw: bytes) -> Mail:
    """The report a mail is, and the unsubscribe token its subject carries; MailTooComplex."""
    check_structure(raw)
    try:
        message = parse_mail(raw)
        return Mail(report_of(message), token_of(message))
    except RecursionError:  # not expected below the limit; never a traceback to the client
        raise MailTooComplex("MIME parts nested too deeply") from None


def check_structure(raw: bytes) -> None:
    """MailTooComplex when the parser's work on `raw` would not be small (see the module doc)."""
    # The parser ends a line at CRLF, LF or a bare CR; SMTP only at CRLF. Counted on the
    # parser's lines, or "Content-Type"s and "--" lines after a bare CR would go unseen.
    raw = _LINE_END.sub(b"\n", raw)
    content_types = _CONTENT_TYPE_FIELD.findall(raw)
    if len(content_types) > MAX_MIME_ENTITIES:
        raise MailTooComplex(f"more than {MAX_MIME_ENTITIES} MIME parts or levels of nesting")
    if any(len(field) > MAX_CONTENT_TYPE_BYTES for field in content_types):
        raise MailTooComplex(f"a Content-Type header longer than {MAX_CONTENT_TYPE_BYTES} bytes")
    if len(_BOUNDARY_LINE.findall(raw)) > MAX_BOUNDARY_LINES:
        raise MailTooComplex(f"more than {MAX_BOUNDARY_LINES} MIME boundaries")


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
