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
