"""GDPR erasure and export of one person, for the tables in PostgreSQL.

Erasure keeps exactly one thing: a hashed suppression entry (reason 'erased'), so the
person is never emailed again. It scrubs the send log's personal fields, deletes queued
retries (they hold the message, address included) and records the request (hashes only).
The segmenter's profile state is erased separately: `erasure_records` are the
`ErasureRequested` records for the privacy topic (retarget.common.privacy_requests runs the
whole request: segmenter lookup, Kafka, then PostgreSQL).

A person is named by email, by userId, or both. By userId alone, the addresses come from
the send log rows of that profile, so they get suppressed too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from retarget.common.identity import email_digest
from retarget.common.schemas import ErasureRequested, encode
from retarget.common.topics import profile_key

ERASED_PROFILE = "<erased>"


def privacy_topic(prefix: str) -> str:
    """Erasure requests for the segmenter; co-partitioned with the events topic."""
    return f"{prefix}.privacy.v1"


def erasure_key(workspace_id: str, email_hash_hex: str) -> bytes:
    """Key of an erasure request naming an address (the segmenter asks every partition)."""
    return f"{workspace_id}:email:{email_hash_hex}".encode()


def erasure_records(
    workspace_id: str,
    *,
    request_id: str,
    requested_at: datetime,
    profile_ids: Iterable[str] = (),
    email_hashes: Iterable[bytes] = (),
    user_id: str | None = None,
) -> list[tuple[bytes, bytes]]:
    """(key, value) records for the privacy topic: one per profile and per address hash."""
    records: list[tuple[bytes, bytes]] = []
    for profile_id in dict.fromkeys(profile_ids):
        message = ErasureRequested(
            workspace_id=workspace_id,
            request_id=request_id,
            requested_at=requested_at,
            profile_id=profile_id,
            user_id=user_id,
        )
        records.append((profile_key(workspace_id, profile_id), encode(message)))
    for digest in dict.fromkeys(email_hashes):
        message = ErasureRequested(
            workspace_id=workspace_id,
            request_id=request_id,
            requested_at=requested_at,
            email_hash=digest.hex(),
            user_id=user_id,
        )
        records.append((erasure_key(workspace_id, digest.hex()), encode(message)))
    return records


@dataclass(frozen=True)
class Person:
    workspace_id: str
    email: str | None = None
    user_id: str | None = None

    def __post_init__(self) -> None:
        if not (self.email or self.user_id):
            raise ValueError("name the person by email or userId")

    @property
    def email_hash(self) -> bytes | None:
        return email_digest(self.email) if self.email else None

    @property
    def user_id_hash(self) -> bytes | None:
        return hashlib.sha256(self.user_id.encode()).digest() if self.user_id else None


@dataclass(frozen=True)
class ErasureReport:
    suppressed: int
    send_log_rows: int
    retries_deleted: int


_PERSON_ROWS = """
    SELECT message_id, recipient_hash, profile_id FROM send_log
    WHERE workspace_id = $1 AND (recipient_hash = $2 OR profile_id = $3 OR recipient_hash = ANY($4::bytea[]))
"""


async def _person_rows(conn: Any, person: Person, extra: set[bytes]) -> list[Any]:
    """The person's send-log rows: by the named address, the userId or the other addresses."""
    return list(
        await conn.fetch(_PERSON_ROWS, person.workspace_id, person.email_hash, person.user_id, sorted(extra))
    )


async def erase(
    conn: Any, person: Person, *, source: str, also_email_hashes: Iterable[bytes] = ()
) -> ErasureReport:
    """Erase `person` (an asyncpg connection; one transaction).

    `also_email_hashes`: the person's other addresses (e.g. the segmenter's profile of a
    userId-only request): suppressed and scrubbed like the named one.
    """
    extra = set(also_email_hashes)
    async with conn.transaction():
        rows = await _person_rows(conn, person, extra)
        message_ids = [r["message_id"] for r in rows]
        hashes = {r["recipient_hash"] for r in rows} | ({person.email_hash} if person.email_hash else set())
        hashes |= extra
        for digest in hashes:
            await conn.execute(
                """INSERT INTO suppressions (workspace_id, email_hash, reason, source)
                   VALUES ($1, $2, 'erased', $3)
                   ON CONFLICT (workspace_id, email_hash) DO UPDATE SET reason = 'erased', source = $3""",
                person.workspace_id,
                digest,
                f"erasure:{source}",
            )
        retries = await conn.execute(
            "DELETE FROM send_retries WHERE message_id = ANY($1::text[])", message_ids
        )
        await conn.execute(
            """UPDATE send_log SET profile_id = $2, last_reply = NULL, last_reason = NULL, updated_at = now()
               WHERE message_id = ANY($1::text[])""",
            message_ids,
            ERASED_PROFILE,
        )
        # the coupons its emails showed (migration 013) name its profile: scrubbed like the send log,
        # the codes themselves kept (single use: a redeemed code must stay redeemed)
        await conn.execute(
            "UPDATE coupons SET profile_id = $3 WHERE workspace_id = $1 AND profile_id = ANY($2::text[])",
            person.workspace_id,
            _profiles(person, rows),
            ERASED_PROFILE,
        )
        deleted = int(retries.split()[-1])
        await conn.execute(
            """INSERT INTO erasures (workspace_id, email_hashes, user_id_hash, source, send_log_rows, retries_deleted)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            person.workspace_id,
            sorted(hashes),
            person.user_id_hash,
            source,
            len(message_ids),
            deleted,
        )
    return ErasureReport(suppressed=len(hashes), send_log_rows=len(message_ids), retries_deleted=deleted)


async def export(conn: Any, person: Person, *, also_email_hashes: Iterable[bytes] = ()) -> dict[str, Any]:
    """Everything PostgreSQL holds about `person`, as JSON-ready data (other addresses: see erase)."""
    extra = set(also_email_hashes)
    rows = await _person_rows(conn, person, extra)
    hashes = list(
        {r["recipient_hash"] for r in rows} | ({person.email_hash} if person.email_hash else set()) | extra
    )
    sends = await conn.fetch(
        """SELECT message_id, campaign, profile_id, state, attempts, last_code, last_reason, created_at, sent_at
           FROM send_log WHERE message_id = ANY($1::text[]) ORDER BY created_at""",
        [r["message_id"] for r in rows],
    )
    suppressions = await conn.fetch(
        """SELECT workspace_id, reason, source, created_at FROM suppressions
           WHERE workspace_id IN ($1, '*') AND email_hash = ANY($2::bytea[])""",
        person.workspace_id,
        hashes,
    )
    campaign_unsubscribes = await conn.fetch(
        """SELECT campaign, source, created_at FROM campaign_unsubscribes
           WHERE workspace_id = $1 AND email_hash = ANY($2::bytea[])""",
        person.workspace_id,
        hashes,
    )
    erasures = await conn.fetch(
        """SELECT source, send_log_rows, retries_deleted, requested_at FROM erasures
           WHERE workspace_id = $1 AND (email_hashes && $2::bytea[] OR user_id_hash = $3)""",
        person.workspace_id,
        hashes,
        person.user_id_hash,
    )
    coupons = await conn.fetch(
        """SELECT code, campaign, issued_at, expires_at, redeemed_at, order_id FROM coupons
           WHERE workspace_id = $1 AND profile_id = ANY($2::text[]) ORDER BY issued_at""",
        person.workspace_id,
        _profiles(person, rows),
    )
    return {
        "workspace_id": person.workspace_id,
        "identifiers": {"email": person.email, "user_id": person.user_id},
        "messages": [_jsonable(r) for r in sends],
        "coupons": [_jsonable(r) for r in coupons],
        "suppressions": [_jsonable(r) for r in suppressions],
        "campaign_unsubscribes": [_jsonable(r) for r in campaign_unsubscribes],
        "erasures": [_jsonable(r) for r in erasures],
    }


def _profiles(person: Person, rows: list[Any]) -> list[str]:
    """The person's profile ids: its send-log rows' and its userId (not one already erased)."""
    found = {r["profile_id"] for r in rows} | ({person.user_id} if person.user_id else set())
    return sorted(found - {ERASED_PROFILE})


def _jsonable(row: Any) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in dict(row).items()}
