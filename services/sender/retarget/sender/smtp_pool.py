"""The real MailTransport: a small pool of reused SMTP connections.

Opening a connection (TCP, EHLO, STARTTLS, AUTH) costs far more than a transaction, so
connections are kept and reused; at most `size` exist, which also bounds the messages in
flight. aiosmtplib opens each connection; smtp_wire.SmtpWire then runs its transactions
(pipelined where the relay offers it) and says in which phase one ended: only a failure
before DATA is provably not a delivery, which is when a stale pooled connection is silently
replaced and the message tried once more.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque

import aiosmtplib

from retarget.common.logging import redact
from retarget.sender.metrics import (
    RELAY_CONNECT_FAILURES,
    SMTP_CONNECTIONS,
    SMTP_SECONDS,
    connect_failure_kind,
    reply_class,
)
from retarget.sender.settings import SmtpTarget
from retarget.sender.smtp_wire import Dropped, SmtpWire
from retarget.sender.transport import Envelope, SmtpReply

log = logging.getLogger(__name__)

_CLOSING = 421  # the server is closing this connection; the transaction can be retried elsewhere


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
        self._idle: deque[SmtpWire] = deque()
        self._open = 0

    async def deliver(self, envelope: Envelope) -> SmtpReply:
        async with self._slots:
            started = time.perf_counter()
            reply = await self._deliver_in_slot(envelope)
            SMTP_SECONDS.labels(reply_class(reply.code)).observe(time.perf_counter() - started)
            return reply

    async def _deliver_in_slot(self, envelope: Envelope) -> SmtpReply:
        for attempt in range(2):
            idle = self._take_idle() if attempt == 0 else None
            reused = idle is not None
            try:
                wire = idle or await self._connect()
            except (OSError, aiosmtplib.SMTPException) as exc:
                RELAY_CONNECT_FAILURES.labels(connect_failure_kind(exc)).inc()
                return SmtpReply(None, redact(f"connect failed: {exc}"), "connect")
            try:
                reply = await wire.transact(envelope)
            except Dropped as dropped:
                self._discard(wire)
                if reused and dropped.phase == "mail":
                    continue  # a stale pooled connection; MAIL was not accepted, so retry is safe
                return SmtpReply(None, redact(str(dropped)), dropped.phase)
            except BaseException:
                self._discard(wire)  # cancelled mid-transaction: its state is unknown
                raise
            ok = reply.phase == "done" and reply.code is not None and 200 <= reply.code < 300
            if reply.code == _CLOSING or not (wire.usable if ok else await wire.reset()):
                self._discard(wire)
            else:
                self._idle.append(wire)
            text = redact(reply.message) if "@" in reply.message else reply.message  # most replies have none
            return SmtpReply(reply.code, text, reply.phase)
        raise AssertionError("unreachable")  # pragma: no cover

    def _take_idle(self) -> SmtpWire | None:
        while self._idle:
            wire = self._idle.pop()
            if wire.usable:
                return wire
            self._discard(wire)  # closed by the server while idle: nothing was sent on it
        return None

    async def _connect(self) -> SmtpWire:
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
            if client.is_ehlo_or_helo_needed:  # connect() greets only for STARTTLS or AUTH
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await client.helo()  # an SMTP-only server: no extensions, so no pipelining
            if client.transport is None:
                raise aiosmtplib.SMTPServerDisconnected("connection closed after EHLO")
        except BaseException:
            client.close()  # a half-open socket (say, a failed STARTTLS or AUTH) must not leak
            raise
        wire = SmtpWire(
            client.transport,
            pipelining=client.supports_extension("pipelining"),
            smtputf8=client.supports_extension("smtputf8"),
            timeout_s=self.timeout_s,
        )
        client.protocol = client.transport = None  # the wire owns the connection from here
        self._open += 1
        SMTP_CONNECTIONS.set(self._open)
        return wire

    def _discard(self, wire: SmtpWire) -> None:
        wire.close()
        self._open -= 1
        SMTP_CONNECTIONS.set(self._open)

    async def check(self) -> str | None:
        if self._idle or self._slots.locked():
            return None  # a live connection, or every slot busy delivering
        async with self._slots:
            try:
                wire = await self._connect()
            except (OSError, aiosmtplib.SMTPException) as exc:
                return redact(f"{self.target.describe()}: {exc}")
            self._idle.append(wire)  # keep it: the next message reuses it
            return None

    async def close(self) -> None:
        while self._idle:
            wire = self._idle.pop()
            try:
                await asyncio.wait_for(wire.quit(), timeout=2)
            except TimeoutError:
                pass
            self._discard(wire)


def _unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
