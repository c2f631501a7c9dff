"""/healthz (the process answers), /readyz (Kafka and PostgreSQL answer), /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from retarget.ingest import metrics as ingest_metrics
from retarget.ingest.api.deps import ServicesDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    problems = await services.problems()
    return JSONResponse({"ready": not problems, "problems": problems}, status_code=503 if problems else 200)


@router.get("/metrics")
async def metrics() -> Response:
    return Response(ingest_metrics.exposition(), media_type=ingest_metrics.CONTENT_TYPE)
