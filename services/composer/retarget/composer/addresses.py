"""Email addresses and display names as they may appear in headers.

An address is accepted only in the plain dot-atom form every MTA takes (no quoted local
parts, no comments, no whitespace or control characters), with an IDNA-encodable domain of
at least two labels. Anything else is a BadAddress, so a malformed or hostile value from a
visitor's traits never reaches a header. Every pattern is applied with fullmatch: `$` also
matches before a trailing newline, which let `ann\n@example.com` through.
"""

from __future__ import annotations

import re
from base64 import b64encode
from functools import lru_cache

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_TLD = re.compile(r"[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59}")
_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")  # atext and spaces: needs no quotes
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")  # C0, DEL, C1, Unicode line breaks
_CHUNK_BYTES = 45  # 60 base64 chars: each encoded word stays within RFC 2047's 75


class BadAddress(ValueError):
    pass


def clean(value: str) -> str:
    """One line of text: CR, LF and every other control character become spaces."""
    return " ".join(_CONTROL.sub(" ", value).split())


@lru_cache(maxsize=4096)  # a workspace's sender addresses are parsed for every message
def parse_address(address: str) -> tuple[str, str]:
    """(local part, ASCII domain) of a plain address; BadAddress when it is not one."""
    if _CONTROL.search(address):  # CR/LF would end the header or the SMTP command it goes into
        raise BadAddress("not a valid email address (control character)")
    local, at, domain = address.strip().rpartition("@")
    if not at or not _LOCAL.fullmatch(local) or len(local) > 64:
        raise BadAddress("not a valid email address (local part)")
    try:
        domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise BadAddress("not a valid email address (domain)") from exc
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(x) for x in labels) or not _TLD.fullmatch(labels[-1]):
        raise BadAddress("not a valid email address (domain)")
    if len(local) + 1 + len(domain) > 254:
        raise BadAddress("not a valid email address (too long)")
    return local, domain


def encoded_words(text: str) -> str:
    """RFC 2047 base64 encoded words for non-ASCII text, folded one word per line."""
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for char in text:
        width = len(char.encode())
        if size + width > _CHUNK_BYTES:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(char)
        size += width
    words.append("".join(chunk))
    return "\r\n ".join(f"=?utf-8?b?{b64encode(w.encode()).decode()}?=" for w in words if w)


def display_name(name: str | None) -> str:
    """A display name as a header phrase: bare, quoted, or encoded when not ASCII or when it
    contains "=?" (readers decode what looks like an encoded word, even inside quotes)."""
    name = clean(name or "")
    if "=?" in name:
        return encoded_words(name)
    if not name or _PHRASE.fullmatch(name):
        return name
    if name.isascii():
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return encoded_words(name)


def mailbox(address: str, name: str | None = None) -> str:
    """`Name <local@domain>` (or the bare address), safe to put in From, To or Reply-To."""
    local, domain = parse_address(address)
    phrase = display_name(name)
    return f"{phrase} <{local}@{domain}>" if phrase else f"{local}@{domain}"
