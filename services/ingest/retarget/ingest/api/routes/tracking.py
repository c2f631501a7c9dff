"""Segment's HTTP Tracking API: POST /v1/{track,identify,page,screen,group,alias,batch}, the
browser SDK's short paths /v1/{t,i,p,s,g,a} and /v1/import (= batch), and their CORS preflights.

Bodies are JSON sent as application/json or text/plain (sendBeacon, analytics-next), with
the write key as the Basic username or `writeKey` in the body. A request from a web page
(`Origin`) is answered with CORS headers when the key's workspace allows that origin, and
refused otherwise (cors.py).

The POST endpoints read the body themselves (not through a pydantic model) so the size
limits hold while reading, gzip is inflated under the same limit, and msgspec does the
decoding. They are raw ASGI apps (api/event_endpoints.py), served by the app ahead of its
middleware stack (main.py); the routes here hold the same endpoints for everything else the
router does (405s, the OpenAPI description) and the CORS preflights. FastAPI path operations
cost about a third of this hot path's CPU in dependency solving and validation, and the
middleware stack and Request objects another ~20% (bench/RESULTS.md).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from retarget.ingest.api.event_endpoints import EventEndpoint, error_answer
from retarget.ingest.bootstrap import IngestServices
from retarget.ingest.errors import IngestError

SINGLE_EVENT_TYPES = ("track", "identify", "page", "screen", "group", "alias")
SHORT_PATHS = {"t": "track", "i": "identify", "p": "page", "s": "screen", "g": "group", "a": "alias"}
# import: what several server SDKs call a batch; b: analytics-next's batching delivery strategy
BATCH_PATHS = ("/v1/batch", "/v1/import", "/v1/b")


def services_of(request: Request) -> IngestServices:
    return request.app.state.services  # type: ignore[no-any-return]


async def answer_error(request: Request, exc: IngestError) -> Response:
    """The error's JSON answer, with CORS headers when the page's origin may read it."""
    status, body, headers = await error_answer(services_of(request), request.headers.get("origin"), exc)
    return Response(body, status, headers, media_type="application/json")


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

# what the app serves ahead of its middleware (main.py); the routes below hold the same ones
POST_ENDPOINTS: dict[str, EventEndpoint] = {
    **{path: EventEndpoint(path, kind) for path, kind in _EVENT_PATHS.items()},
    **{path: EventEndpoint(path, None) for path in BATCH_PATHS},
}

routes: list[BaseRoute] = [
    *(LabelledRoute(path, endpoint, methods=["POST"]) for path, endpoint in POST_ENDPOINTS.items()),
    *(LabelledRoute(path, preflight, methods=["OPTIONS"]) for path in [*_EVENT_PATHS, *BATCH_PATHS]),
]
