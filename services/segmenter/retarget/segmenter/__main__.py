"""`python -m retarget.segmenter`: run one segmenter worker until SIGTERM."""

from __future__ import annotations

import asyncio
import sys

import faust
import mode.loop
from aiokafka.admin import AIOKafkaAdminClient

from retarget.common.kafka import ensure_topics
from retarget.common.logging import JsonFormatter, configure_logging
from retarget.common.topics import Topics
from retarget.segmenter.app import create_app, internal_topics, registry_from
from retarget.segmenter.campaigns import CampaignError
from retarget.segmenter.settings import SegmenterSettings


def main() -> None:
    # uvloop: faust's per-record path is a few event-loop turns; uvloop makes each cheaper
    mode.loop.use("uvloop")
    settings = SegmenterSettings()
    configure_logging("segmenter", settings.log_level)
    try:
        campaigns = registry_from(settings)
    except CampaignError as exc:
        print(f"segmenter: a campaign file is invalid, not starting: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    # the events topic and the internal ones must exist, with the same partition count, before
    # faust subscribes: co-partitioning is what lets a forwarded event reach its owner
    topics = [*Topics(settings.topic_prefix).all(), *internal_topics(settings.topic_prefix)]
    app = create_app(settings, campaigns=campaigns)
    # faust creates the tables' changelog topics itself, but on a fresh cluster a first batch
    # can write before their metadata arrives (PartitionsMismatch, 0 partitions): create them
    # here, compacted as faust would, and wait until the broker lists them
    changelogs = [table.changelog_topic.get_topic_name() for table in app.tables.values()]
    asyncio.run(_ensure_all(settings, topics, changelogs))
    problem = asyncio.run(events_partitions_problem(settings))
    if problem is not None:
        print(f"segmenter: {problem}, not starting", file=sys.stderr)
        raise SystemExit(2)
    worker = faust.Worker(
        app,
        loglevel=settings.log_level,
        logging_config=_logging_config(settings.log_level),
        redirect_stdouts=False,
    )
    # faust's terminal spinner, kept at levels >= WARNING, sets the root logger to DEBUG: every
    # faust debug call (one per produced record) then builds a log record — ~5% of a worker's CPU
    worker.spinner = None
    # no clean-stop marker, no wipe after a crash: local state is never ahead of the changelog
    # (recording.py), so faust's recovery from the stored offsets is always right
    worker.execute_from_commandline()


async def _ensure_all(settings: SegmenterSettings, topics: list[str], changelogs: list[str]) -> None:
    await ensure_topics(settings, topics)
    await ensure_topics(settings, changelogs, configs={"cleanup.policy": "compact"})


async def events_partitions_problem(settings: SegmenterSettings) -> str | None:
    """Why the events topic's partitions don't match RETARGET_TOPIC_PARTITIONS, or None.

    The worker owns the events partitions of that count and re-routes a record to the partition
    its key hashes to over it (events_loop._reroute): an events topic with fewer partitions
    would dead-letter every record hashing past them ("Unrecognized partition"), one with more
    (partitions added) is partly never read and re-routed by a count its producers don't use.
    """
    topic = Topics(settings.topic_prefix).events
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    count = sum(len(d["partitions"]) for d in described if d["topic"] == topic)
    if count != settings.topic_partitions:
        return (
            f"the events topic {topic} has {count} partitions, RETARGET_TOPIC_PARTITIONS is "
            f"{settings.topic_partitions}: they must be the same"
        )
    return None


def _logging_config(level: str) -> dict:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter, "service": "segmenter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {"aiokafka": {"level": "WARNING"}},
    }


if __name__ == "__main__":
    main()
