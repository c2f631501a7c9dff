"""Public port vs operations port: which routes a request may reach depends on the local
port it arrived on (one app serves both sockets, see server.py).

The public port is the internet's: the Segment API, the privacy API and the tracking links.
/metrics names every workspace and campaign, /readyz describes the dependencies and the
OpenAPI pages map the service, so they answer only on the operations port; that port
answers nothing else. /healthz says only "ok" and answers on both (load balancers probe
the public port).
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

OPS_PATHS = frozenset({"/metrics", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
BOTH_PATHS = frozenset({"/healthz"})

_NOT_HERE = orjson.dumps({"success": False, "code": "not_found", "message": "Not Found"})


class PortSplit:
    def __init__(self, app: ASGIApp, *, ops_port: int) -> None:
        self.app = app
        self.ops_port = ops_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._allowed(scope):
            await _not_found(send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        path = scope["path"]
        if path in BOTH_PATHS:
            return True
        return on_ops_port(scope, self.ops_port) == (path in OPS_PATHS)


def on_ops_port(scope: Scope, ops_port: int) -> bool:
    server = scope.get("server")
    return server is not None and server[1] == ops_port


async def _not_found(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(_NOT_HERE))],
        }
    )
    await send({"type": "http.response.body", "body": _NOT_HERE})
