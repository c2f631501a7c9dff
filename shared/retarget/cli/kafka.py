"""`retarget kafka create-topics`: create the topics this system owns (idempotent)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    kafka = sub.add_parser("kafka", help="Kafka topics")
    kafka_sub = kafka.add_subparsers(dest="kafka_command", required=True)
    create = kafka_sub.add_parser("create-topics", help="create missing topics")
    create.set_defaults(func=_create_topics)


async def _create_topics(args: argparse.Namespace) -> int:
    from retarget.common.kafka import ensure_topics
    from retarget.common.settings import CommonSettings
    from retarget.common.topics import Topics

    settings = CommonSettings()
    try:
        created = await ensure_topics(settings, Topics(settings.topic_prefix).all())
    except Exception as exc:  # aiokafka raises several unrelated types for "no broker"
        print(
            f"cannot create topics on {settings.kafka_bootstrap} ({exc!r}): start the local stack with "
            "`retarget devstack up`, or point RETARGET_KAFKA_BOOTSTRAP at a cluster"
        )
        return 2
    print(f"created {len(created)} topic(s): {', '.join(created) or 'all present'}")
    return 0
