"""Assembles the ingest app: services from bootstrap, routes, error handlers, metrics.

create_app()                                  # real adapters, from the environment
create_app(settings, services=bootstrap(settings, publisher=fake, key_lookup=fake))

The app answers on two ports (server.py); PortSplit keeps /metrics, /readyz and the OpenAPI
pages off the public one. The event routes' POSTs on the public port, every event's way in,
are served ahead of the middleware stack (IngestApp), which counts them itself.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.types import Receive, Scope, Send

from retarget.ingest import metrics
from retarget.ingest.api.errors import install_error_handlers
from retarget.ingest.api.openapi import describe_tracking_api
from retarget.ingest.api.ports import PortSplit, on_ops_port
from retarget.ingest.api.request_metrics import RequestMetrics
from retarget.ingest.api.routes import links, ops, privacy, sdk, tracking
from retarget.ingest.bootstrap import IngestServices, bootstrap
from retarget.ingest.management.routes import routers as management_routers
from retarget.ingest.settings import IngestSettings

NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


class IngestApp(FastAPI):
    """FastAPI, with the event routes' POSTs on the public port handed straight to their
    endpoints: the middleware stack (error handlers, body limit, port split, request metrics,
    router, Request objects) cost ~20% of a single-event request's CPU, and these endpoints
    answer their own errors (api/event_endpoints.py). On the ops port they go through the
    stack, whose PortSplit answers 404."""

    ops_port: int

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = tracking.POST_ENDPOINTS.get(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None or scope["method"] != "POST" or on_ops_port(scope, self.ops_port):
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        status = 500
        metrics.IN_FLIGHT_REQUESTS.inc()
        try:
            status = await endpoint.respond(scope, receive, send)
        finally:
            metrics.IN_FLIGHT_REQUESTS.dec()
            metrics.count_request(endpoint.path, status)


def create_app(
    settings: IngestSettings | None = None, *, services: IngestServices | None = None
) -> IngestApp:
    services = services or bootstrap(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await services.open()
        # what exists now (the app, its libraries, the connections) lives as long as the process;
        # out of the collector's generations, a full collection scans only what requests made
        gc.freeze()
        try:
            yield
        finally:
            try:
                await services.close()  # after uvicorn stopped taking requests and drained them
            finally:
                metrics.forget_this_process()

    app = IngestApp(
        title="retarget ingest",
        summary="Segment-compatible HTTP Tracking API",
        lifespan=lifespan,
        # FastAPI's OpenTelemetry hooks look up the global providers on every request (8% of a
        # single-event request's CPU) to find them unconfigured; ingest's metrics are Prometheus
        telemetry=NO_TELEMETRY,
    )
    app.state.services = services
    app.ops_port = services.settings.ingest_ops_port
    app.router.routes.extend(tracking.routes)  # plain Starlette routes: see tracking.py
    app.router.routes.extend(sdk.routes)
    app.include_router(links.router)
    app.include_router(privacy.router)
    for router in management_routers:
        app.include_router(router)
    app.include_router(ops.router)
    describe_tracking_api(app)
    install_error_handlers(app)
    app.add_middleware(RequestMetrics)
    settings = services.settings
    app.add_middleware(PortSplit, ops_port=settings.ingest_ops_port)  # outermost: before any work
    return app
