"""`python -m retarget.ingest`: serve the ingest app with uvicorn.

uvicorn handles SIGTERM/SIGINT: it stops accepting, lets in-flight requests finish (up to
shutdown_grace_s), then runs the lifespan's shutdown, which flushes the Kafka producer.
One process per container; scale with replicas. (uvicorn's --workers would need
prometheus-client's multiprocess mode and a shared rate limiter first.)
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

import uvicorn

from retarget.common.logging import configure_logging
from retarget.ingest.main import create_app
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
    config = uvicorn.Config(
        create_app(settings),
        host=settings.http_host,
        port=settings.port,
        log_config=None,  # keep our JSON logs; uvicorn's loggers propagate to the root handler
        access_log=False,  # requests are counted in /metrics; a line per event batch is noise
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
        loop="auto",
        http="auto",
    )
    _Server(config).run()


if __name__ == "__main__":
    main()
