"""`python -m retarget.segmenter`: run one segmenter worker until SIGTERM."""

from __future__ import annotations

import asyncio

import faust

from retarget.common.kafka import ensure_topics
from retarget.common.logging import JsonFormatter, configure_logging
from retarget.common.topics import Topics
from retarget.segmenter.app import create_app, ticks_topic_name
from retarget.segmenter.settings import SegmenterSettings


def main() -> None:
    settings = SegmenterSettings()
    configure_logging("segmenter", settings.log_level)
    # the events and ticks topics must exist, with the same partition count, before faust
    # subscribes: co-partitioning is what lets a tick reach the agent that owns the profile
    topics = [*Topics(settings.topic_prefix).all(), ticks_topic_name(settings.topic_prefix)]
    asyncio.run(ensure_topics(settings, topics))
    app = create_app(settings)
    worker = faust.Worker(
        app,
        loglevel=settings.log_level,
        logging_config=_logging_config(settings.log_level),
        redirect_stdouts=False,
    )
    worker.execute_from_commandline()


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
