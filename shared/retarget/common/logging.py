"""Structured JSON logs, one object per line, that never contain a raw email address.

Addresses are replaced by a short stable hash (`<email:1a2b3c4d5e>`), so a log line can
still be correlated with the same recipient without revealing who it is. The redaction runs
on every string of the entry (message, each field, exception text) just before it is
serialized, so an address anywhere is caught — SMTP replies, which often quote the
recipient, included — and the line stays valid JSON (redacting the serialized line could
eat the letter of an escape such as \\n and break it). Internationalized addresses (RFC 6531:
any non-ASCII character in the local part or the domain) are addresses too.
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
_LOCAL = rf"[A-Za-z0-9._%+!#$&'*/=?^`{{|}}~\-{_NON_ASCII}]{{1,64}}"
_LABEL = rf"[A-Za-z0-9_\-{_NON_ASCII}]"
_EMAIL = re.compile(rf"{_LOCAL}@(?:{_LABEL}{{1,63}}\.)+{_LABEL}{{2,63}}")
_SECRET_FIELDS = {"password", "secret", "link_secret", "write_key", "authorization", "token"}
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
    return _EMAIL.sub(lambda m: f"<email:{email_hash(m.group(0))}>", text)


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
