"""Segment's HTTP Tracking API: POST /v1/{track,identify,page,screen,group,alias,batch}, the
browser SDK's short paths /v1/{t,i,p,s,g,a} and /v1/import (= batch), and their CORS preflights.

Bodies are JSON sent as application/json or text/plain (sendBeacon, analytics-next), with
the write key as the Basic username or `writeKey` in the body. A request from a web page
(`Origin`) is answered with CORS headers when the key's workspace allows that origin, and
refused otherwise (cors.py).

The routes read the body themselves (not through a pydantic model) so the size limits hold
while reading, gzip is inflated under the same limit, and msgspec does the decoding.

They are plain Starlette routes, not FastAPI path operations: they take nothing but the
request, and FastAPI's per-request dependency solving and validation wrapper cost about a
third of this hot path's CPU (measured: 4.0k → 5.xk single-event requests/s per process).
Errors still go through the app's exception handlers (api/errors.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from prometheus_client import Histogram
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from retarget.ingest import metrics
from retarget.ingest.body import check_media_type, read_body
from retarget.ingest.bootstrap import IngestServices
from retarget.ingest.cors import Cors
from retarget.ingest.errors import IngestError

SUCCESS = b'{"success":true}'
SINGLE_EVENT_TYPES = ("track", "identify", "page", "screen", "group", "alias")
SHORT_PATHS = {"t": "track", "i": "identify", "p": "page", "s": "screen", "g": "group", "a": "alias"}
# import: what several server SDKs call a batch; b: analytics-next's batching delivery strategy
BATCH_PATHS = ("/v1/batch", "/v1/import", "/v1/b")

Endpoint = Callable[[Request], Awaitable[Response]]


def _json(body: bytes, origin: str | None = None) -> Response:
    headers = Cors.allow(origin) if origin is not None else None  # the workspace allowed it
    return Response(content=body, media_type="application/json", headers=headers)


def services_of(request: Request) -> IngestServices:
    return request.app.state.services  # type: ignore[no-any-return]


async def answer_error(request: Request, exc: IngestError) -> Response:
    """The error's JSON answer, with CORS headers when the page's origin may read it."""
    cors = await services_of(request).cors.on_error(request.headers.get("origin"), exc)
    return Response(orjson.dumps(exc.body()), exc.status, exc.headers() | cors, media_type="application/json")


def _with_cors_on_errors(endpoint: Endpoint) -> Endpoint:
    """A page's request gets its error answered here, with CORS headers when its origin may read
    it (cors.py); without `Origin` errors go to the app's handlers as before."""

    async def answer(request: Request) -> Response:
        try:
            return await endpoint(request)
        except IngestError as exc:
            if "origin" not in request.headers:
                raise
            return await answer_error(request, exc)

    answer.__name__, answer.__doc__ = endpoint.__name__, endpoint.__doc__
    return answer


async def _read_checked(request: Request, limit: int, what: str, payload_bytes: Histogram) -> bytes:
    """The body of an event or batch request: media type checked, size bounded while reading."""
    check_media_type(request.headers.get("content-type"))
    body = await read_body(request.headers, request.stream(), limit=limit, what=what)
    payload_bytes.observe(len(body))
    return body


def _single_event_endpoint(path: str, event_type: str) -> Endpoint:
    payload_bytes = metrics.PAYLOAD_BYTES.labels(path)

    async def accept(request: Request) -> Response:
        services = services_of(request)
        body = await _read_checked(request, services.settings.max_event_bytes, "event", payload_bytes)
        origin = request.headers.get("origin")
        await services.intake.accept_one(event_type, body, request.headers.get("authorization"), origin)
        return _json(SUCCESS, origin)

    accept.__name__ = event_type
    accept.__doc__ = f"Accept one `{event_type}` event (Segment HTTP Tracking API)."
    return _with_cors_on_errors(accept)


def _batch_endpoint(path: str) -> Endpoint:
    payload_bytes = metrics.PAYLOAD_BYTES.labels(path)

    async def batch(request: Request) -> Response:
        """Accept up to max_batch_events events; invalid ones are listed in `rejected` by index."""
        services = services_of(request)
        body = await _read_checked(request, services.settings.max_batch_bytes, "batch", payload_bytes)
        origin = request.headers.get("origin")
        result = await services.intake.accept_batch(body, request.headers.get("authorization"), origin)
        if not result.rejected:
            return _json(SUCCESS, origin)
        answer = {
            "success": True,
            "accepted": result.accepted,
            "rejected": [r.as_json() for r in result.rejected],
        }
        return _json(orjson.dumps(answer), origin)

    return _with_cors_on_errors(batch)


async def preflight(request: Request) -> Response:
    """CORS preflight: no key is sent, so any workspace's allowed origin passes (cors.py)."""
    headers = await services_of(request).cors.preflight(request.headers.get("origin"))
    if headers is None:
        body = b'{"success":false,"code":"origin_not_allowed","message":"no workspace allows this origin"}'
        return Response(body, 403, media_type="application/json")
    return Response(status_code=204, headers=headers)


class LabelledRoute(Route):
    """Puts itself in the scope as FastAPI's routes do, so request metrics label it by template."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


_EVENT_PATHS = {f"/v1/{kind}": kind for kind in SINGLE_EVENT_TYPES} | {
    f"/v1/{short}": kind for short, kind in SHORT_PATHS.items()
}

routes: list[BaseRoute] = [
    *(
        LabelledRoute(path, _single_event_endpoint(path, kind), methods=["POST"])
        for path, kind in _EVENT_PATHS.items()
    ),
    *(LabelledRoute(path, _batch_endpoint(path), methods=["POST"]) for path in BATCH_PATHS),
    *(LabelledRoute(path, preflight, methods=["OPTIONS"]) for path in [*_EVENT_PATHS, *BATCH_PATHS]),
]
