"""Segment's HTTP Tracking API: POST /v1/{track,identify,page,screen,group,alias,batch}.

The routes read the body themselves (not through a pydantic model) so the size limits hold
while reading, gzip is inflated under the same limit, and msgspec does the decoding.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from fastapi import APIRouter, Request, Response

from retarget.ingest import metrics
from retarget.ingest.api.deps import IntakeDep, SettingsDep
from retarget.ingest.body import read_body

router = APIRouter(prefix="/v1", tags=["tracking"])

SUCCESS = b'{"success":true}'
SINGLE_EVENT_TYPES = ("track", "identify", "page", "screen", "group", "alias")


def _json(body: bytes) -> Response:
    return Response(content=body, media_type="application/json")


def _single_event_route(event_type: str) -> Callable[..., Awaitable[Response]]:
    async def accept(request: Request, intake: IntakeDep, settings: SettingsDep) -> Response:
        body = await read_body(
            request.headers, request.stream(), limit=settings.max_event_bytes, what="event"
        )
        metrics.PAYLOAD_BYTES.labels(request.url.path).observe(len(body))
        await intake.accept_one(event_type, body, request.headers.get("authorization"))
        return _json(SUCCESS)

    accept.__name__ = event_type
    accept.__doc__ = f"Accept one `{event_type}` event (Segment HTTP Tracking API)."
    return accept


for _event_type in SINGLE_EVENT_TYPES:
    router.add_api_route(f"/{_event_type}", _single_event_route(_event_type), methods=["POST"])


@router.post("/batch")
async def batch(request: Request, intake: IntakeDep, settings: SettingsDep) -> Response:
    """Accept up to max_batch_events events; invalid ones are listed in `rejected` by index."""
    body = await read_body(request.headers, request.stream(), limit=settings.max_batch_bytes, what="batch")
    metrics.PAYLOAD_BYTES.labels("/v1/batch").observe(len(body))
    result = await intake.accept_batch(body, request.headers.get("authorization"))
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
