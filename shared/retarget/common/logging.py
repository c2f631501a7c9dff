"""Structured JSON logs, one object per line, that never contain a raw email address.

Addresses are replaced by a short stable hash (`<email:1a2b3c4d5e>`), so a log line can
still be correlated with the same recipient without revealing who it is. The redaction runs
on the final line, so an address inside any field or exception text is caught too.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

import orjson

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
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
        line = orjson.dumps(entry, default=str).decode()
        return redact(line)


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka and faust are chatty at INFO about every rebalance step
    logging.getLogger("aiokafka").setLevel(max(root.level, logging.WARNING))
