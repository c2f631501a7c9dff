"""Counts requests by route template and status, and how many are in flight.

A plain ASGI middleware (not BaseHTTPMiddleware), so it adds no task or body copy per
request. The route label is the matched template, never the raw path, so it stays bounded.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retarget.ingest import metrics


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        metrics.IN_FLIGHT_REQUESTS.inc()
        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            metrics.IN_FLIGHT_REQUESTS.dec()
            route = getattr(scope.get("route"), "path", "unmatched")
            metrics.count_request(route, status)
