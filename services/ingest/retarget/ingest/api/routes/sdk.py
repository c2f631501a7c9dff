"""GET /v1/projects/{writeKey}/settings (Segment) and GET /sourceConfig (RudderStack): the
SDKs' load-time configuration (sdk_settings.py), for write keys only.

An unknown key, a revoked one and a secret key all get the same 404, so the answer reveals
nothing about which keys exist. A page must be on one of the workspace's origins (cors.py).
Plain Starlette routes like tracking.py's.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from retarget.ingest.api.routes.tracking import LabelledRoute, answer_error, preflight, services_of
from retarget.ingest.auth import write_key_from
from retarget.ingest.cors import Cors
from retarget.ingest.errors import IngestError, Unauthorized
from retarget.ingest.sdk_settings import rudderstack_source_config, segment_cdn_settings

_NOT_FOUND = orjson.dumps({"success": False, "code": "not_found", "message": "no such source"})


async def _answer(request: Request, write_key: str, document: Any) -> Response:
    services = services_of(request)
    origin = request.headers.get("origin")
    try:
        workspace_id, _ = await services.keys.workspace_for(write_key)
        if origin is not None:
            await services.cors.check(workspace_id, origin)
    except Unauthorized:
        return Response(_NOT_FOUND, 404, media_type="application/json")
    except IngestError as exc:
        return await answer_error(request, exc)
    # Vary on every answer: a cache must not hand a page the answer made for another origin or none
    headers = {"Cache-Control": "max-age=60", "Vary": "Origin"} | (
        Cors.allow(origin) if origin is not None else {}
    )
    return Response(orjson.dumps(document(write_key)), headers=headers, media_type="application/json")


async def segment_settings(request: Request) -> Response:
    """Segment's cdnSettings for this write key: events go to this ingest."""
    public = urlsplit(services_of(request).settings.public_url or str(request.base_url))
    write_key = request.path_params["write_key"]
    return await _answer(
        request, write_key, lambda key: segment_cdn_settings(key, scheme=public.scheme, host=public.netloc)
    )


async def rudderstack_config(request: Request) -> Response:
    """RudderStack's sourceConfig for the write key in `?writeKey=` or the Basic username."""
    try:
        write_key = write_key_from(request.headers.get("authorization"), request.query_params.get("writeKey"))
    except Unauthorized:
        return Response(_NOT_FOUND, 404, media_type="application/json")
    return await _answer(request, write_key, rudderstack_source_config)


routes: list[BaseRoute] = [
    LabelledRoute("/v1/projects/{write_key}/settings", segment_settings, methods=["GET"]),
    *(
        LabelledRoute(path, rudderstack_config, methods=["GET"])
        for path in ("/sourceConfig", "/sourceConfig/")
    ),
    *(LabelledRoute(path, preflight, methods=["OPTIONS"]) for path in ("/sourceConfig", "/sourceConfig/")),
]
