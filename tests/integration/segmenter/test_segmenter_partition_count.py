"""A worker whose RETARGET_TOPIC_PARTITIONS differs from the events topic's partitions refuses to
start: re-routing by the wrong count would dead-letter (fewer) or scatter (more) events."""

from __future__ import annotations

import pytest

from retarget.common.kafka import ensure_topics
from retarget.common.topics import Topics
from retarget.segmenter.__main__ import events_partitions_problem
from retarget.segmenter.settings import SegmenterSettings

pytestmark = pytest.mark.integration


async def test_an_events_topic_of_another_partition_count_is_named_before_the_worker_starts(
    stack, topic_prefix
):
    bootstrap = stack["RETARGET_KAFKA_BOOTSTRAP"]
    settings = SegmenterSettings(kafka_bootstrap=bootstrap, topic_prefix=topic_prefix, topic_partitions=4)
    await ensure_topics(settings, [Topics(topic_prefix).events], partitions=2)
    problem = await events_partitions_problem(settings)
    assert problem is not None and "has 2 partitions" in problem and "is 4" in problem
    assert await events_partitions_problem(settings.model_copy(update={"topic_partitions": 2})) is None
