"""`python -m retarget.composer`: render triggers into outbound messages until SIGTERM."""

from __future__ import annotations

import asyncio
import logging

from retarget.common import runtime
from retarget.common.kafka import ensure_topics
from retarget.common.logging import configure_logging
from retarget.common.ops import start_ops_server
from retarget.common.topics import Topics
from retarget.composer.bootstrap import bootstrap
from retarget.composer.settings import ComposerSettings

log = logging.getLogger("retarget.composer")


async def serve(stop: asyncio.Event) -> None:
    settings = ComposerSettings()
    await ensure_topics(settings, Topics(settings.topic_prefix).all())
    service = await bootstrap(settings)
    await service.start()

    ops = await start_ops_server(
        settings.http_host, settings.ops_port, service.problems, service.consumer.assignment
    )
    log.info("composer started", extra={"ops_port": settings.ops_port})
    try:
        await service.stage.run(stop)
    finally:
        await service.close()
        await ops.cleanup()
        log.info("composer stopped")


def main() -> None:
    configure_logging("composer", ComposerSettings.model_fields["log_level"].default)
    runtime.run(serve)


if __name__ == "__main__":
    main()
