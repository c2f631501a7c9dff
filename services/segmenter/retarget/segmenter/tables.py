"""The two things record handling needs from outside: tables and a way to send records.

Faust tables in production, dicts in unit tests (testing.py); `Send` produces to Kafka.
"""

from __future__ import annotations

from typing import Protocol


class Table(Protocol):
    def get(self, key: bytes) -> bytes | None: ...
    def __setitem__(self, key: bytes, value: bytes) -> None: ...
    def __delitem__(self, key: bytes) -> None: ...


class Send(Protocol):
    """Produce to `output` ("triggers", "profile_events", "events", "dead_letter"); `wait`: until
    the broker acknowledged it; `partition`: an explicit partition (a broadcast), else by key."""

    async def __call__(
        self, output: str, key: bytes, value: bytes, wait: bool, partition: int | None = None
    ) -> None: ...
