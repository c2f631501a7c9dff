"""Segment's HTTP Tracking API: POST /v1/{track,identify,page,screen,group,alias,batch}.

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
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from retarget.ingest import metrics
from retarget.ingest.body import read_body
from retarget.ingest.bootstrap import IngestServices

SUCCESS = b'{"success":true}'
SINGLE_EVENT_TYPES = ("track", "identify", "page", "screen", "group", "alias")


def _json(body: bytes) -> Response:
    return Response(content=body, media_type="application/json")


def _services(request: Request) -> IngestServices:
    return request.app.state.services  # type: ignore[no-any-return]


def _single_event_endpoint(event_type: str) -> Callable[[Request], Awaitable[Response]]:
    payload_bytes = metrics.PAYLOAD_BYTES.labels(f"/v1/{event_type}")

    async def accept(request: Request) -> Response:
        services = _services(request)
        limit = services.settings.max_event_bytes
        body = await read_body(request.headers, request.stream(), limit=limit, what="event")
        payload_bytes.observe(len(body))
        await services.intake.accept_one(event_type, body, request.headers.get("authorization"))
        return _json(SUCCESS)

    accept.__name__ = event_type
    accept.__doc__ = f"Accept one `{event_type}` event (Segment HTTP Tracking API)."
    return accept


_batch_payload_bytes = metrics.PAYLOAD_BYTES.labels("/v1/batch")


async def batch(request: Request) -> Response:
    """Accept up to max_batch_events events; invalid ones are listed in `rejected` by index."""
    services = _services(request)
    limit = services.settings.max_batch_bytes
    body = await read_body(request.headers, request.stream(), limit=limit, what="batch")
    _batch_payload_bytes.observe(len(body))
    result = await services.intake.accept_batch(body, request.headers.get("authorization"))
    if not result.rejected:
        return _json(SUCCESS)
    return _json(
        orjson.dumps(
            {
                "success": True,
                "accepted": result.accepted,
                "rejected": [r.as_json() for r in result.rejected],
            }
        )
    )


class _LabelledRoute(Route):
    """Puts itself in the scope as FastAPI's routes do, so request metrics label it by template."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


routes: list[BaseRoute] = [
    *(
        _LabelledRoute(f"/v1/{kind}", _single_event_endpoint(kind), methods=["POST"])
        for kind in SINGLE_EVENT_TYPES
    ),
    _LabelledRoute("/v1/batch", batch, methods=["POST"]),
]
