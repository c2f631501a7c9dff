"""Dependency aliases for the FastAPI routes (ops, tracking links). The services are built by
bootstrap and hung on app.state by main.create_app, so a test app with fakes resolves them
the same way. (The /v1 routes are plain Starlette routes and read app.state themselves.)

`async def` on purpose: FastAPI runs a plain `def` dependency in a worker thread, which
cost a thread hand-off per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from retarget.ingest.bootstrap import IngestServices


async def get_services(request: Request) -> IngestServices:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[IngestServices, Depends(get_services)]
