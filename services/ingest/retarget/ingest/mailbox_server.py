"""`python -m retarget.ingest.mailbox_server`: the mailbox (mailbox.py: unsubscribes, bounces,
complaints) over SMTP,
with /healthz, /readyz and /metrics on its ops port, until SIGTERM.

A process of its own, beside the HTTP one: it scales (and fails) on its own, and one
listener is plenty — unsubscribes by mail are a trickle next to events.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket

from aiosmtpd.smtp import SMTP

from retarget.common import runtime
from retarget.common.logging import configure_logging
from retarget.common.ops import start_ops_server
from retarget.ingest.bootstrap import bootstrap
from retarget.ingest.mail_pool import MailPool
from retarget.ingest.mailbox import UnsubscribeMailbox
from retarget.ingest.reports import PgReports
from retarget.ingest.settings import IngestSettings

log = logging.getLogger("retarget.ingest.mailbox")


async def serve(stop: asyncio.Event, settings: IngestSettings | None = None) -> None:
    settings = settings or IngestSettings()
    services = bootstrap(settings)
    await services.open()
    hostname = settings.mailbox_hostname or socket.getfqdn()
    pool = MailPool(settings.mailbox_read_workers, settings.mailbox_read_timeout_s)
    smtp = functools.partial(
        SMTP,
        UnsubscribeMailbox(
            services.links,
            PgReports(services.pool),
            settings.link_secret.get_secret_value().encode() if settings.link_secret else None,
            pool=pool,
            feedback_address=settings.feedback_loop_address or f"fbl@{hostname}",
        ),
        data_size_limit=settings.mailbox_max_bytes,
        hostname=hostname,
        ident="retarget unsubscribe mailbox",
    )
    server = await asyncio.get_running_loop().create_server(smtp, settings.http_host, settings.mailbox_port)
    ops = await start_ops_server(settings.http_host, settings.mailbox_ops_port, services.problems)
    log.info("unsubscribe mailbox started", extra={"smtp_port": settings.mailbox_port})
    try:
        await stop.wait()
    finally:
        server.close()  # no new sessions; a message in DATA is answered before its session ends
        await asyncio.wait_for(server.wait_closed(), settings.shutdown_grace_s)
        pool.close()
        await services.close()
        await ops.cleanup()
        log.info("unsubscribe mailbox stopped")


def main() -> None:
    configure_logging("ingest-mailbox", IngestSettings.model_fields["log_level"].default)
    # aiosmtpd logs every command line at INFO, RCPT TO's address among them, as a bytes repr
    # whose escapes (\xc3\xa9) no redaction can read as an address: warnings only
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    runtime.run(serve)


if __name__ == "__main__":
    main()
