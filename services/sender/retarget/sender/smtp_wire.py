"""One SMTP connection's transactions, lean: MAIL, RCPT and DATA in one write (RFC 2920).

aiosmtplib opens the connection (TCP, EHLO, STARTTLS, AUTH: rare and subtle) and then hands
its transport to `SmtpWire`, which runs every later transaction itself. Why: aiosmtplib
awaits one reply per command (four round trips and eight awaits per message, plus address
parsing), which was the biggest part of the sender's CPU. With PIPELINING (Postfix and
smtp-sink offer it) a message is two round trips — MAIL+RCPT+DATA, then the content —
and without it the same code sends one command per round trip.

Replies are read in order, so each reply is matched to its command, and the first one that
is not the expected answer decides the transaction, in that command's phase. The content is
written only after a 354, so a connection that drops before then has delivered nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import deque

from retarget.sender.transport import Envelope, SmtpPhase, SmtpReply

_MAX_REPLY = 64 * 1024  # a reply (with continuation lines) longer than this is a broken server
_LINE_ENDS = re.compile(rb"\r\n|\n|\r(?!\n)")
_LEADING_DOT = re.compile(rb"(?m)^\.")
_NOT_IN_ADDRESS = re.compile(r"[\x00-\x20\x7f<>]")  # what would break or inject into a command


class Dropped(Exception):
    """The connection broke (or timed out) waiting for the reply to `phase`."""

    def __init__(self, phase: SmtpPhase, why: str) -> None:
        super().__init__(why)
        self.phase = phase


def message_content(raw: bytes) -> bytes:
    """The DATA content: CRLF line ends, leading dots doubled, the final "." line."""
    if raw.count(b"\n") != raw.count(b"\r\n") or raw.count(b"\r") != raw.count(b"\r\n"):
        raw = _LINE_ENDS.sub(b"\r\n", raw)
    if not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    if raw.startswith(b".") or b"\n." in raw:
        raw = _LEADING_DOT.sub(b"..", raw)
    return raw + b".\r\n"


class SmtpWire(asyncio.Protocol):
    def __init__(
        self, transport: asyncio.BaseTransport, *, pipelining: bool, smtputf8: bool, timeout_s: float
    ):
        self.transport = transport
        self.pipelining = pipelining
        self.smtputf8 = smtputf8
        self.timeout_s = timeout_s
        self.closed = False
        self._buffer = bytearray()
        self._lines: list[bytes] = []  # the lines of a multi-line reply so far
        self._replies: deque[tuple[int, str]] = deque()
        self._want = 0
        self._waiter: asyncio.Future[None] | None = None
        self._loop = asyncio.get_running_loop()
        transport.set_protocol(self)

    @property
    def usable(self) -> bool:
        """Open, and nothing said while idle (say, a 421 before an idle timeout)."""
        return not self.closed and not self._replies and not self.transport.is_closing()

    # asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        start = 0
        while (end := self._buffer.find(b"\n", start)) >= 0:
            line = bytes(self._buffer[start:end]).rstrip(b"\r")
            start = end + 1
            if len(line) < 3 or not line[:3].isdigit():
                self._break()
                return
            self._lines.append(line[4:])
            if line[3:4] != b"-":
                text = b"\n".join(self._lines).decode("utf-8", "replace")
                self._replies.append((int(line[:3]), text))
                self._lines = []
        del self._buffer[:start]
        if len(self._buffer) > _MAX_REPLY or sum(map(len, self._lines)) > _MAX_REPLY:
            self._break()
        self._wake()

    def eof_received(self) -> bool:
        self._break()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()

    # the transaction

    async def transact(self, envelope: Envelope) -> SmtpReply:
        """Deliver one message; a refusal is a reply, a broken connection raises Dropped."""
        ascii_only = (envelope.mail_from + envelope.recipient).isascii()
        if not ascii_only and not self.smtputf8:
            return SmtpReply(553, "address is not ASCII and the relay lacks SMTPUTF8", "mail")
        if _NOT_IN_ADDRESS.search(envelope.mail_from):
            return SmtpReply(553, "sender address has characters SMTP can't carry", "mail")
        if _NOT_IN_ADDRESS.search(envelope.recipient):
            return SmtpReply(553, "recipient address has characters SMTP can't carry", "rcpt")
        option = b"" if ascii_only else b" SMTPUTF8"
        commands: list[tuple[bytes, SmtpPhase]] = [
            (b"MAIL FROM:<" + envelope.mail_from.encode() + b">" + option + b"\r\n", "mail"),
            (b"RCPT TO:<" + envelope.recipient.encode() + b">\r\n", "rcpt"),
            (b"DATA\r\n", "data"),
        ]
        content = message_content(envelope.raw)
        if self.pipelining:
            replies = await self._exchange(b"".join(c for c, _ in commands), 3, "mail")
        else:
            replies = []
            for command, phase in commands:
                replies += await self._exchange(command, 1, phase)
                if not _expected(replies[-1][0], phase):
                    break
        for (code, text), (_, phase) in zip(replies, commands, strict=False):
            if not _expected(code, phase):
                if replies[-1][0] == 354:  # a server that took DATA anyway: end it empty (no recipient)
                    with contextlib.suppress(Dropped):  # the refusal stands; the pool drops the connection
                        await self._exchange(b".\r\n", 1, "data")
                return SmtpReply(code, text, phase)
        if len(replies) < len(commands):  # pipelined, and the connection broke before every reply
            raise Dropped(commands[len(replies)][1], "connection lost or timed out waiting for a reply")
        code, text = (await self._exchange(content, 1, "data"))[0]
        return SmtpReply(code, text, "done")

    async def reset(self) -> bool:
        """RSET after a refusal (the server still holds the envelope); False when not usable after."""
        try:
            [(code, _)] = await self._exchange(b"RSET\r\n", 1, "mail")
        except Dropped:
            return False
        return code == 250 and self.usable

    async def quit(self) -> None:
        try:
            await self._exchange(b"QUIT\r\n", 1, "mail")
        except Dropped:
            pass
        self.close()

    def close(self) -> None:
        self.closed = True
        self.transport.close()

    async def _exchange(self, data: bytes, replies: int, phase: SmtpPhase) -> list[tuple[int, str]]:
        """Write `data`, then wait for `replies` replies (Dropped names the phase of the first missing)."""
        if self.closed or self.transport.is_closing():
            raise Dropped(phase, "connection closed")
        self.transport.write(data)  # type: ignore[attr-defined]
        if len(self._replies) < replies and not self.closed:
            self._want = replies
            self._waiter = self._loop.create_future()
            timer = self._loop.call_later(self.timeout_s, self._time_out)
            try:
                await self._waiter
            except asyncio.CancelledError:
                self.close()  # replies to what was sent would be read as the next message's
                raise
            finally:
                timer.cancel()
                self._waiter = None
        got = [self._replies.popleft() for _ in range(min(replies, len(self._replies)))]
        if len(got) < replies:
            if got and self.pipelining:
                return got  # the caller decides by the replies it has: a refusal stands
            raise Dropped(phase, "connection lost or timed out waiting for a reply")
        return got

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done() and (self.closed or len(self._replies) >= self._want):
            waiter.set_result(None)

    def _time_out(self) -> None:
        self._break()

    def _break(self) -> None:
        self.close()
        self._wake()


def _expected(code: int, phase: str) -> bool:
    return code == 354 if phase == "data" else 200 <= code < 300
