"""The real MailTransport: aiosmtplib over a small pool of reused connections.

Opening a connection (TCP, EHLO, STARTTLS, AUTH) costs far more than a transaction, so
connections are kept and reused; at most `size` exist, which also bounds the messages in
flight. The transaction is driven command by command (MAIL, RCPT, DATA) so the reply says
in which phase it ended: only a failure before DATA is provably not a delivery, which is
when a stale pooled connection is silently replaced and the message tried once more.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque

import aiosmtplib
from aiosmtplib import SMTPResponseException, SMTPServerDisconnected, SMTPTimeoutError

from retarget.common.logging import redact
from retarget.sender.metrics import SMTP_CONNECTIONS, SMTP_SECONDS, reply_class
from retarget.sender.settings import SmtpTarget
from retarget.sender.transport import Envelope, SmtpPhase, SmtpReply

log = logging.getLogger(__name__)

_CLOSING = 421  # the server is closing this connection; the transaction can be retried elsewhere


class _Dropped(Exception):
    """The connection broke in `phase`; nothing after that phase happened."""

    def __init__(self, phase: SmtpPhase, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.phase = phase


class SmtpPool:
    def __init__(
        self,
        target: SmtpTarget,
        *,
        size: int = 10,
        timeout_s: float = 30.0,
        tls_verify: bool = True,
        helo_name: str | None = None,
    ) -> None:
        self.target = target
        self.size = size
        self.timeout_s = timeout_s
        self.tls_verify = tls_verify
        self.helo_name = helo_name
        self._slots = asyncio.Semaphore(size)
        self._idle: deque[aiosmtplib.SMTP] = deque()
        self._open = 0

    async def deliver(self, envelope: Envelope) -> SmtpReply:
        async with self._slots:
            started = time.perf_counter()
            reply = await self._deliver_in_slot(envelope)
            SMTP_SECONDS.labels(reply_class(reply.code)).observe(time.perf_counter() - started)
            return reply

    async def _deliver_in_slot(self, envelope: Envelope) -> SmtpReply:
        reused = bool(self._idle)
        for _ in range(2):
            try:
                client = self._idle.pop() if self._idle else await self._connect()
            except (OSError, aiosmtplib.SMTPException) as exc:
                return SmtpReply(None, redact(f"connect failed: {exc}"), "connect")
            try:
                reply = await self._transact(client, envelope)
            except _Dropped as dropped:
                self._discard(client)
                if reused and dropped.phase == "mail":
                    reused = False  # a stale pooled connection; MAIL was not accepted, so retry is safe
                    continue
                return SmtpReply(None, redact(str(dropped)), dropped.phase)
            if reply.code == _CLOSING or not await self._ready_for_next(client, reply):
                self._discard(client)
            else:
                self._idle.append(client)
            return reply
        raise AssertionError("unreachable")  # pragma: no cover

    async def _transact(self, client: aiosmtplib.SMTP, envelope: Envelope) -> SmtpReply:
        phase: SmtpPhase = "mail"
        try:
            options, encoding = _address_options(client, envelope)
            await client.mail(envelope.mail_from, options=options, encoding=encoding)
            phase = "rcpt"
            await client.rcpt(envelope.recipient, encoding=encoding)
            phase = "data"
            response = await client.data(envelope.raw)
            return SmtpReply(response.code, redact(response.message), "done")
        except SMTPResponseException as exc:
            return SmtpReply(exc.code, redact(exc.message), "done" if phase == "data" else phase)
        except UnicodeEncodeError:
            return SmtpReply(553, "address is not ASCII and the relay lacks SMTPUTF8", phase)
        except (SMTPServerDisconnected, SMTPTimeoutError, OSError) as exc:
            raise _Dropped(phase, exc) from exc

    async def _ready_for_next(self, client: aiosmtplib.SMTP, reply: SmtpReply) -> bool:
        """After a refusal the server still holds the envelope; RSET clears it for the next message."""
        if reply.code is not None and 200 <= reply.code < 300:
            return client.is_connected
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            return False
        return client.is_connected

    async def _connect(self) -> aiosmtplib.SMTP:
        t = self.target
        client = aiosmtplib.SMTP(
            hostname=t.host,
            port=t.port,
            username=t.username,
            password=t.password,
            local_hostname=self.helo_name,
            timeout=self.timeout_s,
            use_tls=t.tls == "tls",
            start_tls=t.tls == "starttls",  # False for smtp://: never upgrade silently, never fall back
            validate_certs=self.tls_verify,
            tls_context=None if self.tls_verify else _unverified_context(),
        )
        try:
            await client.connect()
        except BaseException:
            client.close()  # a half-open socket (say, a failed STARTTLS or AUTH) must not leak
            raise
        self._open += 1
        SMTP_CONNECTIONS.set(self._open)
        return client

    def _discard(self, client: aiosmtplib.SMTP) -> None:
        client.close()
        self._open -= 1
        SMTP_CONNECTIONS.set(self._open)

    async def check(self) -> str | None:
        if self._idle or self._slots.locked():
            return None  # a live connection, or every slot busy delivering
        async with self._slots:
            try:
                client = await self._connect()
            except (OSError, aiosmtplib.SMTPException) as exc:
                return redact(f"{self.target.describe()}: {exc}")
            self._idle.append(client)  # keep it: the next message reuses it
            return None

    async def close(self) -> None:
        while self._idle:
            client = self._idle.pop()
            try:
                await asyncio.wait_for(client.quit(), timeout=2)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                pass
            self._discard(client)


def _address_options(client: aiosmtplib.SMTP, envelope: Envelope) -> tuple[list[str], str]:
    if (envelope.mail_from + envelope.recipient).isascii():
        return [], "ascii"
    if client.supports_extension("smtputf8"):
        return ["SMTPUTF8"], "utf-8"
    raise UnicodeEncodeError("ascii", envelope.recipient, 0, 1, "non-ASCII address")


def _unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
