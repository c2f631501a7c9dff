"""How long a service waits at start for its config: ConfigFollower.start() on a feed of
N records (≈2 KB templates over 1,000 workspaces × 7 names), until ready.

Usage (the local stack running): .venv/bin/python bench/bench_config_follower.py [--records 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from retarget.common.kafka import delete_topics_with_prefixes, ensure_topics
from retarget.common.settings import CommonSettings
from retarget.config.follower import ConfigFollower
from retarget.config.records import ConfigChange, config_topic, encode


def changes(count: int) -> list[ConfigChange]:
    now = datetime.now(UTC)
    body = {"subject": "Hi", "html": "<p>" + "x" * 2000 + "</p>", "text": None}
    return [
        ConfigChange(f"ws-{i % 1000}", "template", f"t{i % 7}", i + 1, False, body, "bench", now)
        for i in range(count)
    ]


async def main(count: int) -> None:
    bootstrap = os.environ.get("RETARGET_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    topic = config_topic(prefix)
    await ensure_topics(CommonSettings(kafka_bootstrap=bootstrap), [topic])
    try:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
        await producer.start()
        try:
            sent = [await producer.send(topic, encode(c)[1], key=encode(c)[0]) for c in changes(count)]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()
        follower = ConfigFollower(bootstrap, topic)
        started = time.perf_counter()
        await follower.start()
        elapsed = time.perf_counter() - started
        await follower.stop()
        print(f"{count} records, {len(follower.of_kind('template'))} objects: ready after {elapsed:.2f} s")
    finally:
        await delete_topics_with_prefixes(bootstrap, {prefix})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    asyncio.run(main(parser.parse_args().records))
