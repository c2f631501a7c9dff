"""One person's GDPR request end to end, the same for ingest's API and the CLI.

Erase: ask the segmenter what it holds (its profiles carry the person's other addresses
and anonymous ids), publish `ErasureRequested` records to the privacy topic (acknowledged
by Kafka), then erase PostgreSQL's records in one transaction and record the erasure. Kafka
goes first so that "recorded" means "requested everywhere": if Kafka is away nothing is
erased and the caller retries; if PostgreSQL fails afterwards the retry publishes again,
which the segmenter treats as a no-op. The segmenter applies the request within seconds
(asynchronously); an export shortly after shows when the profile is gone.

Export: PostgreSQL's records plus the segmenter's profiles; when the segmenter can't be
reached the export still answers, with a note saying what is missing.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import httpx
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from retarget.common.clock import Clock
from retarget.common.identity import email_digest
from retarget.common.privacy import ErasureReport, Person, erase, erasure_records, export

T = TypeVar("T")
Step = Callable[[Any], Awaitable[T]]  # gets an asyncpg connection
RunStep = Callable[[str, Step[Any]], Awaitable[Any]]  # (what it does, step) -> the step's result
Publish = Callable[[Sequence[tuple[bytes, bytes]]], Awaitable[None]]  # acknowledged, or raises
MAX_REDIRECTS = 4


class PrivacySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RETARGET_", extra="ignore")

    segmenter_url: str = Field(
        "http://127.0.0.1:18081", description="Base URL of a segmenter worker (profiles for export/erasure)."
    )
    segmenter_timeout_s: float = Field(3.0, gt=0, description="Time limit of each call to the segmenter.")


@dataclass(frozen=True)
class FoundProfiles:
    profiles: list[dict[str, Any]]
    problem: str | None = None  # why the segmenter's answer is missing or incomplete


class ProfileFinder(Protocol):
    async def find(self, person: Person) -> FoundProfiles: ...


class PersonRecords(Protocol):
    """PostgreSQL's half (retarget.common.privacy)."""

    async def erase(self, person: Person, *, source: str, also_email_hashes: set[bytes]) -> ErasureReport: ...

    async def export(self, person: Person, *, also_email_hashes: set[bytes]) -> dict[str, Any]: ...


class PgPersonRecords:
    """`run(what, step)` runs a step with a connection: the CLI's own, or one from ingest's pool."""

    def __init__(self, run: RunStep) -> None:
        self._run = run

    async def erase(self, person: Person, *, source: str, also_email_hashes: set[bytes]) -> ErasureReport:
        step: Step[ErasureReport] = lambda conn: erase(  # noqa: E731
            conn, person, source=source, also_email_hashes=also_email_hashes
        )
        result: ErasureReport = await self._run("erase the person", step)
        return result

    async def export(self, person: Person, *, also_email_hashes: set[bytes]) -> dict[str, Any]:
        step: Step[dict[str, Any]] = lambda conn: export(conn, person, also_email_hashes=also_email_hashes)  # noqa: E731
        result: dict[str, Any] = await self._run("export the person", step)
        return result


async def on_pool_connection(pool: Any, step: Step[T]) -> T:
    """Run `step` on a connection of an asyncpg pool (erase needs one for its transaction)."""
    async with pool.acquire() as conn:
        return await step(conn)


class SegmenterProfiles:
    """The segmenter's profiles of a person, over its HTTP API (any worker routes to the owner)."""

    def __init__(
        self, settings: PrivacySettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._base = settings.segmenter_url.rstrip("/")
        self._timeout = settings.segmenter_timeout_s
        self._transport = transport

    async def find(self, person: Person) -> FoundProfiles:
        ws = person.workspace_id
        try:
            async with httpx.AsyncClient(timeout=self._timeout, transport=self._transport) as client:
                ids = [person.user_id] if person.user_id else []
                if person.email_hash is not None:
                    by_address = await self._get(client, f"/emails/{_q(ws)}/{person.email_hash.hex()}")
                    ids += by_address.get("profile_ids", []) if by_address else []
                found: dict[str, dict[str, Any]] = {}
                for profile_id in dict.fromkeys(ids):
                    profile = await self._follow(client, ws, profile_id)
                    if profile is not None:
                        found.setdefault(profile["profile_id"], profile)
        except (httpx.HTTPError, ValueError) as exc:
            return FoundProfiles([], f"the segmenter at {self._base} did not answer: {exc!r}")
        return FoundProfiles(list(found.values()))

    async def _follow(self, client: httpx.AsyncClient, ws: str, profile_id: str) -> dict[str, Any] | None:
        """The live profile behind an id, following identity redirects (anonymousId → userId)."""
        for _ in range(MAX_REDIRECTS + 1):
            profile = await self._get(client, f"/profiles/{_q(ws)}/{_q(profile_id)}")
            if profile is None or not profile.get("merged_into"):
                return profile
            profile_id = profile["merged_into"]
        return None

    async def _get(self, client: httpx.AsyncClient, path: str) -> dict[str, Any] | None:
        response = await client.get(self._base + path)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ValueError(f"HTTP {response.status_code} from {path.split('/')[1]}")
        body: dict[str, Any] = response.json()
        return body


class PrivacyRequests:
    def __init__(
        self,
        *,
        records: PersonRecords,
        profiles: ProfileFinder,
        publish: Publish,
        clock: Clock,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._records, self._profiles, self._publish = records, profiles, publish
        self._clock, self._new_id = clock, new_id

    async def erase(self, person: Person, *, source: str) -> dict[str, Any]:
        found = await self._profiles.find(person)
        hashes = _address_hashes(found) | ({person.email_hash} if person.email_hash else set())
        profile_ids = [
            *([person.user_id] if person.user_id else []),
            *(p["profile_id"] for p in found.profiles),
        ]
        request_id = self._new_id()
        records = erasure_records(
            person.workspace_id,
            request_id=request_id,
            requested_at=self._clock.now(),
            profile_ids=profile_ids,
            email_hashes=sorted(hashes),
            user_id=person.user_id,
        )
        await self._publish(records)  # first: nothing is recorded as erased unless it was requested
        report = await self._records.erase(person, source=source, also_email_hashes=hashes)
        segmenter: dict[str, Any] = {
            "requests_published": len(records),
            "profiles_found": len(found.profiles),
        }
        if found.problem:
            segmenter["note"] = (
                f"{found.problem}; its profiles are still erased through Kafka, but addresses only the "
                "segmenter knew were not added to the suppression list: erase by email too if you know them"
            )
        return {
            "erased": True,
            "workspace_id": person.workspace_id,
            "request_id": request_id,
            "suppressed": report.suppressed,
            "send_log_rows_scrubbed": report.send_log_rows,
            "retries_deleted": report.retries_deleted,
            "segmenter": segmenter,
        }

    async def export(self, person: Person) -> dict[str, Any]:
        found = await self._profiles.find(person)
        data = await self._records.export(person, also_email_hashes=_address_hashes(found))
        data["profiles"] = found.profiles
        if found.problem:
            data["notes"] = [f"segmenter profiles not included: {found.problem}"]
        return data


def _address_hashes(found: FoundProfiles) -> set[bytes]:
    return {
        email_digest(p["email"]) for p in found.profiles if isinstance(p.get("email"), str) and p["email"]
    }


def _q(part: str) -> str:
    return quote(part, safe="")
