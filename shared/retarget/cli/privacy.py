"""`retarget privacy erase|export --workspace W (--email E | --user-id U)`: GDPR requests.

Erase deletes the segmenter's profile state (through the privacy topic: RETARGET_KAFKA_BOOTSTRAP)
and PostgreSQL's records, keeping only a hashed suppression entry and a record of the request;
export prints everything held about the person as JSON, the segmenter's profiles included
(RETARGET_SEGMENTER_URL). This command works with database and Kafka credentials (an
operator's); a shop's servers use ingest's POST /v1/privacy/erase and /v1/privacy/export
instead, with a secret key of scope `privacy` (`retarget secret-key create`), never the
public write key. See retarget.common.privacy_requests.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    privacy = sub.add_parser("privacy", help="GDPR erasure and export of one person")
    privacy_sub = privacy.add_subparsers(dest="privacy_command", required=True)
    for name, help_text in (("erase", "erase a person"), ("export", "print what is held about a person")):
        parser = privacy_sub.add_parser(name, help=help_text)
        parser.add_argument("--workspace", required=True)
        parser.add_argument("--email")
        parser.add_argument("--user-id")
        parser.set_defaults(func=_run)


async def _run(args: argparse.Namespace) -> int:
    from retarget.cli._db import connection
    from retarget.common.clock import SystemClock
    from retarget.common.privacy import Person
    from retarget.common.privacy_requests import (
        PgPersonRecords,
        PrivacyRequests,
        PrivacySettings,
        SegmenterProfiles,
    )

    try:
        person = Person(args.workspace, email=args.email, user_id=args.user_id)
    except ValueError as exc:
        print(f"error: {exc} (--email or --user-id)")
        return 2
    async with connection() as conn:
        if conn is None:
            return 2

        async def run(what: str, step: Any) -> Any:
            return await step(conn)

        publisher = _KafkaPublisher()
        requests = PrivacyRequests(
            records=PgPersonRecords(run),
            profiles=SegmenterProfiles(PrivacySettings()),
            publish=publisher.publish,
            clock=SystemClock(),
        )
        if args.privacy_command == "export":
            print(json.dumps(await requests.export(person), indent=2))
            return 0
        try:
            report = await requests.erase(person, source="cli")
        except _KafkaUnavailable as exc:
            print(f"error: {exc}")
            return 1
        finally:
            await publisher.close()
    print(json.dumps(report, indent=2))
    return 0


class _KafkaUnavailable(Exception):
    pass


class _KafkaPublisher:
    """Connects on first publish, creates the privacy topic if missing, waits for the acks."""

    def __init__(self) -> None:
        self._producer: Any = None

    async def publish(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        import asyncio

        from retarget.common.kafka import ensure_topics, make_producer
        from retarget.common.privacy import privacy_topic
        from retarget.common.settings import CommonSettings

        settings = CommonSettings()
        topic = privacy_topic(settings.topic_prefix)
        try:
            async with asyncio.timeout(30):
                await ensure_topics(settings, [topic], timeout_s=15)
                self._producer = make_producer(settings)
                await self._producer.start()
                for key, value in records:
                    await self._producer.send_and_wait(topic, value, key=key)
        except Exception as exc:  # aiokafka's errors, connection errors, the timeout
            raise _KafkaUnavailable(
                f"cannot publish the erasure to Kafka at RETARGET_KAFKA_BOOTSTRAP ({exc!r}); nothing was "
                "erased: start Kafka (`retarget devstack up`) and run the command again"
            ) from exc

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
