"""In-memory fakes shared by every service's unit tests (never used in production code).

Each fake stands in for one small interface of a side effect, so unit tests of pure rules
and handlers need no broker, database or SMTP server. Integration tests use the real ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def timestamp(self) -> float:
        return self._now.timestamp()

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now


@dataclass
class SentRecord:
    topic: str
    value: bytes
    key: bytes | None


@dataclass
class RecordingPublisher:
    """Collects what would have been produced to Kafka."""

    sent: list[SentRecord] = field(default_factory=list)

    async def publish(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        self.sent.append(SentRecord(topic, value, key))

    def on(self, topic: str) -> list[SentRecord]:
        return [r for r in self.sent if r.topic == topic]


def delivery_status_report(
    message_id: str,
    *,
    to: str,
    recipient: str = "nobody@example.com",
    action: str = "failed",
    status: str = "5.1.1",
    diagnostic: str | None = None,
) -> bytes:
    """A DSN as Postfix writes one (RFC 3464), returning the original's headers."""
    diagnostic = diagnostic or f"smtp; 550 {status} <{recipient}>: Recipient address rejected"
    text = f"""From: MAILER-DAEMON@relay.example (Mail Delivery System)
To: {to}
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
 boundary="B1"

--B1
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

--B1
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; relay.example
X-Postfix-Queue-ID: 4F1C2A

Final-Recipient: rfc822; {recipient}
Action: {action}
Status: {status}
Diagnostic-Code: {diagnostic}

--B1
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: Shop <news@shop.example>
To: {recipient}
Message-ID: <{message_id}@shop.example>
Subject: Still thinking it over?

--B1--
"""
    return text.replace("\n", "\r\n").encode()


def feedback_report(
    message_id: str,
    *,
    to: str = "fbl@shop.example",
    recipient: str = "ann@example.com",
    return_path: str | None = None,
) -> bytes:
    """A complaint as a mailbox provider's feedback loop sends it (ARF, RFC 5965); the returned
    original starts with the Return-Path its final server added (the email's envelope sender)."""
    original_return_path = f"Return-Path: <{return_path}>\n" if return_path else ""
    text = f"""From: feedbackloop@mailbox.example
To: {to}
Subject: complaint about message from 192.0.2.1
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
 boundary="A1"

--A1
Content-Type: text/plain; charset="US-ASCII"

This is an email abuse report for an email message received from IP 192.0.2.1.

--A1
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1
Source-IP: 192.0.2.1

--A1
Content-Type: message/rfc822
Content-Disposition: inline

{original_return_path}From: Shop <news@shop.example>
To: {recipient}
Message-ID: <{message_id}@shop.example>
Subject: Still thinking it over?

Hello
--A1--
"""
    return text.replace("\n", "\r\n").encode()


def most_in_any_window(times: list[float], window_s: float) -> int:
    """The most timestamps in any half-open window [t, t + window_s) (two pointers):
    the rate a limit allowed, as a sink saw it (the scale-out e2e test and bench_rate_share.py)."""
    times = sorted(times)
    most, first = 0, 0
    for last, t in enumerate(times):
        while t - times[first] >= window_s:
            first += 1
        most = max(most, last - first + 1)
    return most


async def create_private_database(admin_dsn: str, prefix: str) -> str:
    """A new database with every migration applied, on the server of `admin_dsn`; its DSN.

    For tests whose senders must not meet other tests' rows: on the shared database every
    running sender of another test (or an older checkout) sweeps stale claims and takes '' rows.
    Drop it with drop_private_database."""
    import uuid
    from urllib.parse import urlsplit

    import asyncpg

    from retarget.common.db import migrate

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = urlsplit(admin_dsn)._replace(path=f"/{name}").geturl()
    await migrate(dsn)
    return dsn


async def drop_private_database(admin_dsn: str, dsn: str) -> None:
    """Drop a database create_private_database made, whoever is still connected to it."""
    from urllib.parse import urlsplit

    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{urlsplit(dsn).path.lstrip("/")}" WITH (FORCE)')
    finally:
        await conn.close()
