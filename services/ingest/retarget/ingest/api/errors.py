"""Known failures become their JSON answer; anything else is logged and becomes a 500
that still speaks the same JSON shape (and a client disconnect is not an error at all)."""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request, Response
from starlette.requests import ClientDisconnect

from retarget.ingest.errors import IngestError

log = logging.getLogger(__name__)


async def ingest_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, IngestError)
    return Response(
        orjson.dumps(exc.body()), status_code=exc.status, headers=exc.headers(), media_type="application/json"
    )


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error", exc_info=exc, extra={"route": request.url.path})
    body = {"success": False, "code": "internal_error", "message": "unexpected error; nothing was accepted"}
    return Response(orjson.dumps(body), status_code=500, media_type="application/json")


async def client_disconnected(_: Request, __: Exception) -> Response:
    return Response(status_code=499)  # nobody reads it; nothing was accepted


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(IngestError, ingest_error)
    app.add_exception_handler(ClientDisconnect, client_disconnected)
    app.add_exception_handler(Exception, unexpected_error)
