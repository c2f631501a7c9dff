"""How ingest is served by uvicorn: its options and the two listening sockets.

The public port (RETARGET_PORT) and the operations port (RETARGET_INGEST_OPS_PORT) are two
sockets of one server, so each worker process serves both and a request's local port says
which routes it may reach (api/ports.py).
"""

from __future__ import annotations

import socket

import uvicorn

from retarget.ingest.http_limits import HTTP_PROTOCOL
from retarget.ingest.settings import IngestSettings


def uvicorn_options(settings: IngestSettings) -> dict[str, object]:
    return {
        "host": settings.http_host,
        "port": settings.port,
        "log_config": None,  # keep our JSON logs; uvicorn's loggers propagate to the root handler
        "access_log": False,  # requests are counted in /metrics; a line per event batch is noise
        "timeout_graceful_shutdown": int(settings.shutdown_grace_s),
        "loop": "uvloop",  # a dependency (uvicorn[standard]); "auto" would hide a missing one
        # httptools (2-3x faster than h11) with a bound on the request head (http_limits.py)
        "http": HTTP_PROTOCOL,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }


def bind_sockets(config: uvicorn.Config, settings: IngestSettings) -> list[socket.socket]:
    """[public, ops]; the ops port's socket is bound the way uvicorn binds its own.

    A uvicorn.Config applies its logging options to the process when it is made: with
    uvicorn's defaults, this one's reinstalled plain-text handlers and the access log (a
    line per request with the client's address, ~5% of a single-event request's CPU) over
    the JSON logs. So it gets the same logging options as the server's own."""
    logging_options = {"log_config": config.log_config, "access_log": config.access_log}
    ops = uvicorn.Config(config.app, host=config.host, port=settings.ingest_ops_port, **logging_options)  # type: ignore[arg-type]
    return [config.bind_socket(), ops.bind_socket()]
