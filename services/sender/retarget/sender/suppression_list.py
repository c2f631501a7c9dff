"""The suppression lists as operators handle them: add, import from CSV, export to CSV.

Addresses are stored only as sha256(lower(trim(email))) (see migration 001), so an export
holds hashes, never addresses, and an import accepts either column: `email` (hashed here)
or `email_hash` (64 hex digits, e.g. from an earlier export or another workspace). A file
without a header row is read as one address per line. Scope '*' is the global list.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from retarget.common.identity import email_digest

GLOBAL = "*"
REASONS = ("unsubscribed", "hard_bounce", "complaint", "erased", "manual")
EXPORT_COLUMNS = ("email_hash", "reason", "source", "created_at")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_CHUNK = 1000

_INSERT = """
INSERT INTO suppressions (workspace_id, email_hash, reason, source)
SELECT $1, h, $2, $3 FROM unnest($4::bytea[]) AS h
ON CONFLICT (workspace_id, email_hash) DO NOTHING
"""


@dataclass
class ImportResult:
    added: int = 0
    already: int = 0
    invalid_lines: list[int] | None = None


def digest_of(value: str) -> bytes | None:
    """The stored digest of an address or of a hex digest; None when it is neither."""
    value = value.strip()
    if _HEX64.match(value):
        return bytes.fromhex(value)
    local, _, domain = value.rpartition("@")
    return email_digest(value) if local and "." in domain else None


def read_digests(lines: TextIO) -> Iterator[tuple[int, bytes | None]]:
    """(line number, digest or None when invalid) for every data row of a CSV file."""
    reader = csv.reader(lines)
    first = next(reader, None)
    if first is None:
        return
    header = [c.strip().lower() for c in first]
    column = next((header.index(n) for n in ("email", "email_hash") if n in header), None)
    if column is None:  # no header: the first row is data, the first column the address
        column = 0
        yield 1, digest_of(first[0]) if first else None
    for number, row in enumerate(reader, start=2):
        if row and any(cell.strip() for cell in row):
            yield number, digest_of(row[column]) if len(row) > column else None


async def add_digests(db: Any, scope: str, reason: str, source: str, digests: Iterable[bytes]) -> int:
    """Insert the digests not yet on the list; return how many were added."""
    added, chunk = 0, []
    for digest in digests:
        chunk.append(digest)
        if len(chunk) >= _CHUNK:
            added += _count(await db.execute(_INSERT, scope, reason, source, chunk))
            chunk = []
    if chunk:
        added += _count(await db.execute(_INSERT, scope, reason, source, chunk))
    return added


async def import_csv(db: Any, scope: str, reason: str, source: str, lines: TextIO) -> ImportResult:
    result = ImportResult(invalid_lines=[])
    valid: list[bytes] = []
    for number, digest in read_digests(lines):
        if digest is None:
            assert result.invalid_lines is not None
            result.invalid_lines.append(number)
        else:
            valid.append(digest)
    unique = list(dict.fromkeys(valid))
    result.added = await add_digests(db, scope, reason, source, unique)
    result.already = len(unique) - result.added
    return result


async def export_csv(db: Any, scope: str, out: TextIO) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    rows = await db.fetch(
        "SELECT email_hash, reason, source, created_at FROM suppressions WHERE workspace_id = $1 "
        "ORDER BY created_at, email_hash",
        scope,
    )
    for r in rows:
        writer.writerow((bytes(r["email_hash"]).hex(), r["reason"], r["source"], r["created_at"].isoformat()))
    return len(rows)


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])  # "INSERT 0 <n>"
