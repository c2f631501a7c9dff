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
from typing import Any

from aiosmtpd.smtp import SMTP

from retarget.common import runtime
from retarget.common.logging import configure_logging
from retarget.common.ops import start_ops_server
from retarget.ingest import metrics
from retarget.ingest.bootstrap import bootstrap
from retarget.ingest.mail_pool import MailPool
from retarget.ingest.mailbox import UnsubscribeMailbox
from retarget.ingest.reports import PgReports
from retarget.ingest.settings import IngestSettings

log = logging.getLogger("retarget.ingest.mailbox")

TOO_MANY_SESSIONS = b"421 4.7.0 Too many connections; please try again later\r\n"


class SessionCap:
    """How many SMTP sessions may be open at once (each may hold up to MAILBOX_MAX_BYTES)."""

    def __init__(self, max_sessions: int) -> None:
        self.max_sessions = max_sessions
        self.open_sessions = 0

    def enter(self) -> bool:
        if self.open_sessions >= self.max_sessions:
            return False
        self.open_sessions += 1
        return True

    def leave(self) -> None:
        self.open_sessions -= 1


class CappedSMTP(SMTP):
    """aiosmtpd's SMTP session, or a 421 and a close when `sessions` are all taken.

    aiosmtpd itself takes any number of connections, and a session in DATA buffers up to its
    size limit until the client ends the DATA (or the 300 s timeout): 400 sessions that never
    did held ~110 MB, so a few thousand would exhaust the process's memory.
    """

    def __init__(self, *args: Any, sessions: SessionCap, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sessions = sessions
        self._admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._admitted and not self._sessions.enter():
            metrics.count_mail_refused("too_many_sessions")
            transport.write(TOO_MANY_SESSIONS)  # type: ignore[attr-defined]
            transport.close()
            return
        self._admitted = True
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._admitted:
            super().data_received(data)

    def eof_received(self) -> bool | None:
        return super().eof_received() if self._admitted else False

    def connection_lost(self, error: Exception | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self._sessions.leave()
        super().connection_lost(error)


async def serve(stop: asyncio.Event, settings: IngestSettings | None = None) -> None:
    settings = settings or IngestSettings()
    services = bootstrap(settings)
    await services.open()
    hostname = settings.mailbox_hostname or socket.getfqdn()
    pool = MailPool(settings.mailbox_read_workers, settings.mailbox_read_timeout_s)
    smtp = functools.partial(
        CappedSMTP,
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
        sessions=SessionCap(settings.mailbox_max_sessions),
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
