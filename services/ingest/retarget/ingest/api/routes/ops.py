"""/healthz (the process answers), /readyz (Kafka and PostgreSQL answer), /metrics; all but
/healthz on the operations port only (api/ports.py).

/readyz names the dependency that is down, never why: exception text can carry hosts,
users and library internals; the reason goes to the log."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from retarget.ingest import metrics as ingest_metrics
from retarget.ingest.api.deps import ServicesDep

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    problems = await services.problems()
    if problems:
        log.warning("not ready", extra={"problems": problems})
    down = dict.fromkeys(problems, "down")
    return JSONResponse({"ready": not problems, "problems": down}, status_code=503 if problems else 200)


@router.get("/metrics")
async def metrics() -> Response:
    return Response(ingest_metrics.exposition(), media_type=ingest_metrics.CONTENT_TYPE)
