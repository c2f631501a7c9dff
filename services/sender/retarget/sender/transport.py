"""The one side effect that can't be undone, behind a small interface.

A MailTransport delivers one envelope (sender, one recipient, raw bytes) and reports what the
server said as an SmtpReply — it never raises for an SMTP answer, so the rules that turn a
reply into an outcome (rules.classify_reply) stay pure and testable without a server.
The real adapter is smtp_pool.SmtpPool; unit tests use an in-memory fake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

SmtpPhase = Literal["connect", "mail", "rcpt", "data", "done"]
"""Where the conversation ended. 'done' means DATA was answered (any code)."""


@dataclass(frozen=True)
class SmtpReply:
    code: int | None  # None when the connection dropped or timed out without an answer
    message: str
    phase: SmtpPhase

    @property
    def connection_lost(self) -> bool:
        return self.code is None


@dataclass(frozen=True)
class Envelope:
    mail_from: str
    recipient: str
    raw: bytes


class MailTransport(Protocol):
    async def deliver(self, envelope: Envelope) -> SmtpReply:
        """Send one message; return the server's final answer for it."""
        ...

    async def check(self) -> str | None:
        """A problem reaching the relay, or None when it answers (for /readyz)."""
        ...

    async def close(self) -> None: ...
