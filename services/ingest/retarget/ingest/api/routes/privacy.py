"""GDPR requests: POST /v1/privacy/erase and POST /v1/privacy/export.

Authenticated by a secret key with scope `privacy` (secret_auth.py), never by a write key:
write keys sit in public pages. The workspace is the key's — a body can never name another
workspace. The body names the person: {"email": ...} and/or {"userId": ...}. Answers are
200 with the erasure report or the export JSON (retarget.common.privacy_requests); no key,
an unknown or a revoked one is a 401 whatever the body (the key is judged first); a bad body
is a 400 naming the field; a write key or a secret key without the scope a 403 naming the
credential needed; only Kafka or PostgreSQL being away is a 503 (retry: erasing twice is
harmless).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
import orjson
from fastapi import APIRouter, Request, Response

from retarget.common.privacy import Person
from retarget.ingest.api.deps import ServicesDep
from retarget.ingest.body import read_body
from retarget.ingest.errors import InvalidField, InvalidPayload

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/privacy", tags=["privacy"])

MAX_BODY_BYTES = 4096
MAX_EMAIL_CHARS = 254  # RFC 5321's path limit
MAX_USER_ID_CHARS = 256
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_FIELD = re.compile(r" - at `\$\.([A-Za-z]+)`$")


class PrivacyBody(msgspec.Struct, rename="camel"):
    email: str | None = None
    user_id: str | int | None = None
    write_key: str | None = None  # never accepted here: read to say that a secret key is needed


_decoder = msgspec.json.Decoder(PrivacyBody)


@router.post("/erase")
async def erase(request: Request, services: ServicesDep) -> Response:
    """Erase a person: the segmenter's profile state, PII in the send log; a hashed suppression stays."""
    person = await _person(request, services)
    report = await services.privacy.erase(person, source="api")
    log.info("person erased", extra={"workspace_id": person.workspace_id, "request_id": report["request_id"]})
    return _json(report)


@router.post("/export")
async def export(request: Request, services: ServicesDep) -> Response:
    """Everything held about a person, as JSON (the segmenter's profiles included when reachable)."""
    person = await _person(request, services)
    return _json(await services.privacy.export(person))


async def _person(request: Request, services: Any) -> Person:
    body = await read_body(request.headers, request.stream(), limit=MAX_BODY_BYTES, what="request")
    try:
        fields, problem = _decoder.decode(body), None
    except msgspec.DecodeError as exc:  # ValidationError included
        fields, problem = None, exc
    # the key first: a caller without one learns nothing about the body (a 401, not a 400)
    workspace_id = await services.secret_keys.workspace_for(
        request.headers.get("authorization"), fields.write_key if fields else None, scope="privacy"
    )
    if fields is None:
        raise _bad_body(problem)
    email = fields.email.strip() if fields.email is not None else None
    if email is not None and (len(email) > MAX_EMAIL_CHARS or not _EMAIL.match(email)):
        raise InvalidField("email must be an address like name@example.com", field="email")
    user_id = str(fields.user_id).strip() if fields.user_id is not None else None
    if user_id is not None and not 0 < len(user_id) <= MAX_USER_ID_CHARS:
        raise InvalidField(f"userId must be 1 to {MAX_USER_ID_CHARS} characters", field="userId")
    if not (email or user_id):
        raise InvalidField("name the person by `email` and/or `userId`", field="email")
    return Person(workspace_id, email=email, user_id=user_id)


def _bad_body(exc: Exception | None) -> InvalidPayload | InvalidField:
    if isinstance(exc, msgspec.ValidationError):
        match = _FIELD.search(str(exc))
        if match:
            return InvalidField(f"{match.group(1)}: {str(exc)[: match.start()]}", field=match.group(1))
        return InvalidPayload("expected a JSON object with `email` and/or `userId`")
    return InvalidPayload(f"body is not valid JSON: {exc}")


def _json(data: dict[str, Any]) -> Response:
    return Response(orjson.dumps(data), media_type="application/json", headers={"Cache-Control": "no-store"})
