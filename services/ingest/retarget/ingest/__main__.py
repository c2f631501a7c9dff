"""`python -m retarget.ingest`: serve the ingest app with uvicorn, on the public port and
the operations port (server.py).

uvicorn handles SIGTERM/SIGINT: it stops accepting, lets in-flight requests finish (up to
shutdown_grace_s), then runs the lifespan's shutdown, which flushes the Kafka producer.
RETARGET_WORKERS > 1 runs that many processes on the port (see workers.py); the
supervisor forwards SIGTERM to each and exits once they all stopped. One ingest per port: a
second one exits at once (code 2) saying which port and what to do (port_lock.py).
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator

import uvicorn

from retarget.common.logging import configure_logging
from retarget.ingest.port_lock import LockFileUnusable, PortTaken, lock_port
from retarget.ingest.server import bind_sockets, uvicorn_options
from retarget.ingest.settings import IngestSettings


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after its graceful shutdown, so the process dies "by signal";
    orchestrators and supervisors read that as a crash. A finished graceful stop exits 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals = [s for s in self._captured_signals if s != signal.SIGTERM]


def main() -> None:
    settings = IngestSettings()
    configure_logging("ingest", settings.log_level)
    try:
        serve(settings)
    except (PortTaken, LockFileUnusable) as refused:  # say why and what to do, no traceback
        print(f"ingest: not starting: {refused.strerror}", file=sys.stderr)
        raise SystemExit(2) from None


def serve(settings: IngestSettings) -> None:
    options = uvicorn_options(settings)
    if settings.workers > 1:
        from retarget.ingest.workers import serve_workers

        serve_workers(options, settings)  # its supervisor holds the ports' locks (reuse_port.py)
        return
    from retarget.ingest.main import create_app

    config = uvicorn.Config(create_app(settings), **options)  # type: ignore[arg-type]
    # the locks a multi-worker supervisor holds, so one ingest per port either way: this one too
    # listens only after its startup, and a multi-worker ingest's probe would pass meanwhile.
    # Taken before binding: bound first, a second one-process ingest died in uvicorn's bind
    # ("Address already in use", exit 3) without naming the port or the ingest holding it.
    with contextlib.ExitStack() as held:
        # the public port's first (the one the message names); 0: the kernel picks it, at bind
        chosen = [p for p in dict.fromkeys((settings.port, settings.ingest_ops_port)) if p]
        for port in chosen:
            held.enter_context(lock_port(port))
        sockets = bind_sockets(config, settings)
        for sock in sockets:
            if (port := sock.getsockname()[1]) not in chosen:
                held.enter_context(lock_port(port))
        _Server(config).run(sockets=sockets)


if __name__ == "__main__":
    main()
