"""`python -m retarget.sender`: run the sender until SIGTERM.

On SIGTERM the batch in hand is delivered, its outcomes produced and its offsets committed,
then the clients close. Configuration: environment variables, see settings.py and README.
"""

from __future__ import annotations

import asyncio

from retarget.common.logging import configure_logging
from retarget.common.ops import start_ops_server
from retarget.common.runtime import run
from retarget.sender.bootstrap import bootstrap
from retarget.sender.settings import SenderSettings


async def serve(settings: SenderSettings, stop: asyncio.Event) -> None:
    sender = bootstrap(settings)
    await sender.start()
    ops = await start_ops_server(
        settings.http_host,
        settings.ops_port,
        sender.ready,
        sender.consumer.assignment,
        details=sender.assignment,  # the outbound partitions' count and the limit share
    )
    try:
        await sender.run(stop)
    finally:
        await ops.cleanup()
        await sender.close()


def main() -> None:
    settings = SenderSettings.model_validate({})  # from the environment (mypy: no pydantic plugin)
    configure_logging("sender", settings.log_level)
    run(lambda stop: serve(settings, stop))


if __name__ == "__main__":
    main()
