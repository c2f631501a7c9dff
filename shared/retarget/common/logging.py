"""Structured JSON logs, one object per line, that never contain a raw email address.

Addresses are replaced by a short stable hash (`<email:1a2b3c4d5e>`), so a log line can
still be correlated with the same recipient without revealing who it is. The redaction runs
on every string of the entry (message, each field, exception text) just before it is
serialized, so an address anywhere is caught — SMTP replies, which often quote the
recipient, included — and the line stays valid JSON (redacting the serialized line could
eat the letter of an escape such as \\n and break it). Internationalized addresses (RFC 6531:
any non-ASCII character in the local part or the domain) are addresses too, and so are quoted
local parts ("ann smith"@…), address literals (ann@[192.0.2.1]) and overlong local parts.
Secret keys (`rt_sk_…`) are cut to their prefix wherever they appear.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
import traceback
from datetime import UTC, date, datetime
from typing import Any

import orjson

# Any non-ASCII character counts as a letter (combining marks, every script). The local part
# is bounded (RFC 5321: 64), so a long run without an "@" costs linear time, not quadratic.
_NON_ASCII = "\u0080-\U0010ffff"
_LOCAL_CHARS = rf"[A-Za-z0-9._%+!#$&'*/=?^`{{|}}~\-{_NON_ASCII}]"
_LABEL = rf"[A-Za-z0-9_\-{_NON_ASCII}]"
_DOMAIN = rf"(?:(?:{_LABEL}{{1,63}}\.)+{_LABEL}{{2,63}}|\[[A-Za-z0-9:.]{{1,64}}\])"  # or [192.0.2.1]
_EMAIL = re.compile(rf"{_LOCAL_CHARS}{{1,64}}@{_DOMAIN}")
_QUOTED_EMAIL = re.compile(rf"\"(?:[^\"\\\r\n]|\\.){{1,64}}\"@{_DOMAIN}")  # "ann smith"@example.com
_LOCAL_CHAR = re.compile(_LOCAL_CHARS)
_MAX_ADDRESS = 254  # RFC 5321: how far back an overlong local part is redacted
_SECRET_FIELDS = {"password", "secret", "link_secret", "write_key", "secret_key", "authorization", "token"}
_SECRET_KEY = re.compile(r"rt_sk_[A-Za-z0-9_\-]+")  # a secret key (retarget.common.secret_keys) anywhere
# color_message: uvicorn's copy of the message with ANSI colours, noise in a JSON log
_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def email_hash(email: str) -> str:
    """Stable, non-reversible short id of an address, for logs and metrics-free correlation."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:10]


def redact(text: str) -> str:
    if "rt_sk_" in text:
        text = _SECRET_KEY.sub("rt_sk_<redacted>", text)
    if "@" not in text:  # most strings: no scan at all
        return text
    text = _sub(_EMAIL, text, extend=True)
    return _sub(_QUOTED_EMAIL, text, extend=False) if '"' in text else text


def _sub(pattern: re.Pattern[str], text: str, *, extend: bool) -> str:
    parts: list[str] = []
    done = 0
    for match in pattern.finditer(text):
        start = match.start()
        # a local part longer than the pattern's 64 characters: the rest of it goes too
        floor = max(done, start - _MAX_ADDRESS)
        while extend and start > floor and _LOCAL_CHAR.fullmatch(text[start - 1]):
            start -= 1
        parts += (text[done:start], f"<email:{email_hash(text[start : match.end()])}>")
        done = match.end()
    parts.append(text[done:])
    return "".join(parts)


def _redacted(value: Any) -> Any:
    """`value` with every string in it redacted; what JSON can't hold natively becomes its str."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float | date):
        return value
    if isinstance(value, dict):
        return {redact(str(key)): _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redacted(item) for item in value]
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = "<redacted>" if key.lower() in _SECRET_FIELDS else value
        if record.exc_info:
            entry["exc"] = "".join(traceback.format_exception(*record.exc_info))
        return orjson.dumps(_redacted(entry), default=str).decode()


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka and faust are chatty at INFO about every rebalance step
    logging.getLogger("aiokafka").setLevel(max(root.level, logging.WARNING))
