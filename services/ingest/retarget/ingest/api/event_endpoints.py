"""The POST endpoints of the event routes (/v1/track … /v1/batch) as raw ASGI apps.

They are the hot path: every event arrives through one of them. So they read the scope's
headers and the body messages themselves and answer with two ASGI messages: no Request or
Response object, no middleware between uvicorn and them (the app serves them ahead of its
middleware stack, main.py; measured in bench/RESULTS.md). They answer exactly what the app's
handlers would: the same JSON bodies, CORS headers (cors.py) and statuses, a 499 for a client
that left, a logged 500 for anything unexpected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from retarget.ingest import metrics
from retarget.ingest.body import check_media_type, read_body
from retarget.ingest.bootstrap import IngestServices
from retarget.ingest.cors import Cors
from retarget.ingest.errors import BodyTooSlow, IngestError

log = logging.getLogger(__name__)

SUCCESS = b'{"success":true}'
_INTERNAL_ERROR = orjson.dumps(
    {"success": False, "code": "internal_error", "message": "unexpected error; nothing was accepted"}
)
# the request headers the endpoints read; the rest are never decoded
_READ_HEADERS = frozenset(
    {b"content-type", b"content-length", b"content-encoding", b"authorization", b"origin"}
)

Answer = tuple[int, bytes, dict[str, str]]
# from the request's start to its body's end: uvicorn bounds no body's time (the head's is
# http_limits.py's), so a body trickled, or never finished, held its request for ever
BODY_TIMEOUT_S = 60.0  # a 500 KB batch at 70 kbit/s; the SDKs gzip theirs


class EventEndpoint:
    """POST of one route: `event_type` for a single-event route, None for a batch route."""

    def __init__(self, path: str, event_type: str | None) -> None:
        self.path = path
        self.event_type = event_type
        self._payload_bytes = metrics.PAYLOAD_BYTES.labels(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.respond(scope, receive, send)

    async def respond(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Answer the request; return its status (for the request metrics)."""
        services: IngestServices = scope["app"].state.services
        headers = _read_headers(scope)
        origin = headers.get("origin")
        try:
            status, body, extra = await self._accept(services, headers, receive)
        except IngestError as exc:
            status, body, extra = await error_answer(services, origin, exc)
        except ClientDisconnect:
            status, body, extra = 499, b"", {}  # nobody reads it; nothing was accepted
        except Exception as exc:
            log.error("unhandled error", exc_info=exc, extra={"route": self.path})
            status, body, extra = 500, _INTERNAL_ERROR, {}
        await _send_answer(send, status, body, extra)
        return status

    async def _accept(self, services: IngestServices, headers: dict[str, str], receive: Receive) -> Answer:
        settings, intake = services.settings, services.intake
        check_media_type(headers.get("content-type"))
        origin, authorization = headers.get("origin"), headers.get("authorization")
        allow = Cors.allow(origin) if origin is not None else {}  # reached only if the workspace allows it
        if self.event_type is not None:
            body = await _read_in_time(headers, receive, limit=settings.max_event_bytes, what="event")
            self._payload_bytes.observe(len(body))
            await intake.accept_one(self.event_type, body, authorization, origin)
            return 200, SUCCESS, allow
        body = await _read_in_time(headers, receive, limit=settings.max_batch_bytes, what="batch")
        self._payload_bytes.observe(len(body))
        result = await intake.accept_batch(body, authorization, origin)
        if not result.rejected:
            return 200, SUCCESS, allow
        answer = {
            "success": True,
            "accepted": result.accepted,
            "rejected": [r.as_json() for r in result.rejected],
        }
        return 200, orjson.dumps(answer), allow


async def error_answer(services: IngestServices, origin: str | None, exc: IngestError) -> Answer:
    """The error's JSON answer, with CORS headers when the page's origin may read it."""
    cors = await services.cors.on_error(origin, exc)
    return exc.status, orjson.dumps(exc.body()), exc.headers() | cors


async def _read_in_time(headers: dict[str, str], receive: Receive, *, limit: int, what: str) -> bytes:
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            return await read_body(headers, _body_chunks(receive), limit=limit, what=what)
    except TimeoutError:
        raise BodyTooSlow(f"the {what}'s body did not arrive within {BODY_TIMEOUT_S:g} s") from None


def _read_headers(scope: Scope) -> dict[str, str]:
    """The headers the endpoints read; the first of repeated ones, as Starlette's Headers.get."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in _READ_HEADERS:
            found.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return found


async def _body_chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def _send_answer(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw = [(b"content-length", b"%d" % len(body))]
    if body:
        raw.append((b"content-type", b"application/json"))
    raw += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
