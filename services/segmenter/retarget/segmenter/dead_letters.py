"""A record the segmenter can't use, as the dead-letter topic keeps it (original bytes + reason)."""

from __future__ import annotations

import base64
from datetime import datetime

from retarget.common.schemas import DeadLettered


def dead_letter_record(
    topic: str,
    partition: int | None,
    offset: int | None,
    key: bytes | None,
    raw: bytes | None,
    reason: str,
    at: datetime,
) -> DeadLettered:
    raw = raw or b""
    try:
        value, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        value, encoding = base64.b64encode(raw).decode(), "base64"
    return DeadLettered(
        stage="segmenter",
        reason=reason,
        topic=topic,
        partition=partition if partition is not None else -1,
        offset=offset if offset is not None else -1,
        key=key.decode("utf-8", "replace") if key else None,
        value=value,
        value_encoding=encoding,  # type: ignore[arg-type]
        at=at,
    )
