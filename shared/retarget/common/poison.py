"""Poison or trouble: is a failure the record's own fault, the same on every try, or the world's?

A stage must tell the two apart. A record that can never be processed (a NUL byte PostgreSQL
refuses in text, an id too long for an index, bytes that don't decode) fails identically on
every replay, so retrying it halts its partition for ever; it is dead-lettered instead. A
database that is down, a timeout or a broker error passes, so the batch is retried and nothing
is dropped.

Decided by the exception's class, never by its message: PostgreSQL's SQLSTATE class 22 (data
exception: invalid text, out of range, bad encoding) and 54 (program limit exceeded: index
row or statement too large), NOT NULL and CHECK violations, and ValueError (which covers
UnicodeError and msgspec's decode errors). Anything else — OSError, TimeoutError, KafkaError,
asyncpg's connection and interface errors, any other PostgreSQL error — is taken as transient.

A third kind is neither: a bug (KeyError, TypeError, AttributeError...) that one record's
content sets off. It fails the same way on every replay too, but so might a bug that every
record sets off, so a Stage retries it a few times before it isolates it like a data error
(`is_transient` tells the world's trouble from everything else).
"""

from __future__ import annotations

import asyncpg
from aiokafka.errors import KafkaError

_DATA_SQLSTATE_CLASSES = ("22", "54")
_DATA_SQLSTATES = ("23502", "23514")  # not_null_violation, check_violation


def is_data_error(exc: BaseException) -> bool:
    """True when retrying the same input can only fail the same way."""
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str):  # a PostgreSQL error: its SQLSTATE says whose fault it is
        return sqlstate[:2] in _DATA_SQLSTATE_CLASSES or sqlstate in _DATA_SQLSTATES
    return isinstance(exc, ValueError)


def describe(exc: BaseException) -> str:
    """The dead letter's reason: the class names the kind of problem, the text the detail."""
    text = str(exc).replace("\x00", "\\x00")
    return f"{type(exc).__name__}: {text[:500]}"


def is_transient(exc: BaseException) -> bool:
    """True when the world is at fault (network, broker, database): retrying can succeed."""
    if is_data_error(exc):
        return False
    if isinstance(getattr(exc, "sqlstate", None), str):  # any other PostgreSQL error
        return True
    return isinstance(exc, OSError | TimeoutError | KafkaError | asyncpg.InterfaceError)
