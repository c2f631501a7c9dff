"""A record the segmenter can't use, as the dead-letter topic keeps it (original bytes + reason)."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from aiokafka.errors import KafkaError

from retarget.common.schemas import DeadLettered
from retarget.segmenter.processor import Poison

log = logging.getLogger(__name__)


async def dead_letter_on_failure(
    work: Awaitable[None], dead_letter: Callable[[str], Awaitable[None]], topic: str
) -> None:
    """Handle one record; its own failure (poison, a bug) sends it to the dead-letter topic with
    the reason, the broker's trouble is raised (the batch is repeated, nothing recorded)."""
    try:
        await work
    except Poison as exc:
        await dead_letter(str(exc))
    except (KafkaError, asyncio.CancelledError):
        raise
    except Exception as exc:
        log.exception("a record failed; dead-lettered", extra={"topic": topic})
        await dead_letter(f"unexpected error: {exc!r}")


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
