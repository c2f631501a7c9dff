"""A record the segmenter can't use, as the dead-letter topic keeps it (original bytes + reason)."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

import rocksdict
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from retarget.common.schemas import DeadLettered, encode
from retarget.segmenter.processor import Poison

log = logging.getLogger(__name__)

#: the most a dead letter's record may take: half of aiokafka's default max request size (1 MiB),
#: so the letter of a record near Kafka's limit (its value base64-encoded, a third larger) fits
MAX_DEAD_LETTER_BYTES = 512 * 1024
MAX_DEAD_LETTER_KEY = 1000  # of a dead letter cut to fit, the most of its key it keeps

#: the worker's own trouble, not the record's: a local database closed under the batch (faust
#: moving a partition), the disk. Dead-lettered, the record would be lost while its position
#: moves past it; raised, the worker exits and the restart repeats the batch from its position.
LOCAL_STORE_ERRORS: tuple[type[BaseException], ...] = (rocksdict.DbClosedError, OSError)
#: how RocksDB's own status messages begin (its Status::ToString) where they concern the store
#: or the disk: rocksdict raises them as a bare `Exception` — a partition database faust has
#: not released yet ("IO error: lock hold by current process"), a full disk, corruption
ROCKSDB_STATUS_PREFIXES = (
    "IO error",
    "Corruption",
    "Resource busy",
    "Operation timed out",
    "Operation aborted",
    "Operation failed. Try again",
    "Shutdown in progress",
    "Result incomplete",
)


def is_local_store_error(exc: BaseException) -> bool:
    """The worker's own store failed, not the record (see LOCAL_STORE_ERRORS)."""
    if isinstance(exc, LOCAL_STORE_ERRORS):
        return True
    return type(exc) is Exception and str(exc).startswith(ROCKSDB_STATUS_PREFIXES)


async def dead_letter_on_failure(
    work: Awaitable[None], dead_letter: Callable[[str], Awaitable[None]], topic: str
) -> None:
    """Handle one record; its own failure (poison, a bug) sends it to the dead-letter topic with
    the reason, the broker's trouble is raised (the batch is repeated, nothing recorded)."""
    try:
        await work
    except Poison as exc:
        await dead_letter(str(exc))
    except MessageSizeTooLargeError as exc:
        # the record's output is as large on every replay: raised, the worker would exit and
        # replay it for ever (the partition stalled in a crash loop)
        log.warning("a record's output is too large for Kafka; dead-lettered", extra={"topic": topic})
        await dead_letter(f"an output of the record is too large for Kafka: {exc!r}")
    except (KafkaError, asyncio.CancelledError, *LOCAL_STORE_ERRORS):
        raise
    except Exception as exc:
        if is_local_store_error(exc):
            raise
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


def encode_dead_letter(letter: DeadLettered, max_bytes: int = MAX_DEAD_LETTER_BYTES) -> bytes:
    """The letter as sent, its value (and key) cut so that it fits in `max_bytes`: a letter too
    large for Kafka would be refused on every replay of its record."""
    value = encode(letter)
    if len(value) <= max_bytes:
        return value
    size = len(letter.value)
    letter.key = letter.key[:MAX_DEAD_LETTER_KEY] if letter.key is not None else None
    letter.reason = f"{letter.reason[:1000]} (value of {size} chars cut: too large for Kafka)"
    value = encode(letter)
    while len(value) > max_bytes and letter.value:
        keep = min(len(letter.value) - 1, int(len(letter.value) * max_bytes / len(value) * 0.9))
        letter.value = letter.value[: max(keep, 0)]
        value = encode(letter)
    return value
