"""Builds the sender from settings: real adapters unless a test passes its own.

Nothing connects here; `Sender.start()` does, so building is cheap and import is inert.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from retarget.common.clock import Clock, SystemClock
from retarget.common.kafka import ensure_topics, make_consumer, make_producer
from retarget.common.stage import Stage
from retarget.common.topics import Topics
from retarget.sender.delivery import Deliverer
from retarget.sender.handler import STAGE_NAME, OutboundHandler
from retarget.sender.pg_store import PostgresDeliveryStore
from retarget.sender.publisher import EventPublisher, KafkaPublisher
from retarget.sender.retry import RetryLoop
from retarget.sender.rules import RetryPolicy
from retarget.sender.settings import SenderSettings
from retarget.sender.smtp_pool import SmtpPool
from retarget.sender.store import DeliveryStore
from retarget.sender.transport import MailTransport

log = logging.getLogger(__name__)


@dataclass
class Sender:
    settings: SenderSettings
    topics: Topics
    store: DeliveryStore
    transport: MailTransport
    consumer: AIOKafkaConsumer
    producer: AIOKafkaProducer
    stage: Stage
    retry_loop: RetryLoop

    async def start(self) -> None:
        if self.settings.create_topics:
            topics = [self.topics.outbound, self.topics.deliveries, self.topics.dead_letter]
            await ensure_topics(self.settings, topics)
        await self.store.start()
        await self.producer.start()
        await self.consumer.start()
        log.info("sender started", extra={"outbound": self.topics.outbound})

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: the batch in hand is delivered, its outcomes produced and its offsets committed."""
        await asyncio.gather(self.stage.run(stop), self.retry_loop.run(stop))

    async def ready(self) -> dict[str, str]:
        problems: dict[str, str] = {}
        for name, check in (("postgres", self.store.check), ("smtp", self.transport.check)):
            problem = await check()
            if problem:
                problems[name] = problem
        try:
            await asyncio.wait_for(self.producer.partitions_for(self.topics.deliveries), 5)
        except Exception as exc:
            problems["kafka"] = f"{type(exc).__name__}: {exc}"
        return problems

    async def close(self) -> None:
        await self.consumer.stop()
        await self.producer.stop()
        await self.transport.close()
        await self.store.close()


def bootstrap(
    settings: SenderSettings,
    *,
    store: DeliveryStore | None = None,
    transport: MailTransport | None = None,
    consumer: AIOKafkaConsumer | None = None,
    producer: AIOKafkaProducer | None = None,
    publisher: EventPublisher | None = None,
    clock: Clock | None = None,
) -> Sender:
    topics = Topics(settings.topic_prefix)
    clock = clock or SystemClock()
    store = store or PostgresDeliveryStore(settings)
    transport = transport or SmtpPool(
        settings.smtp_target(),
        size=settings.smtp_connections,
        timeout_s=settings.smtp_timeout_s,
        tls_verify=settings.smtp_tls_verify,
        helo_name=settings.smtp_helo_name,
    )
    consumer = consumer or make_consumer(settings, topics.outbound, group_id=settings.sender_group)
    producer = producer or make_producer(settings)
    policy = RetryPolicy(
        initial_s=settings.retry_initial_s,
        max_interval_s=settings.retry_max_interval_s,
        max_age_s=settings.retry_max_age_s,
        max_attempts=settings.retry_max_attempts,
    )
    deliverer = Deliverer(store, transport, policy, clock)
    handler = OutboundHandler(store, deliverer, topics, clock)
    stage = Stage(STAGE_NAME, consumer, producer, handler, max_batch=settings.batch_size)
    retry_loop = RetryLoop(
        store,
        deliverer,
        publisher or KafkaPublisher(producer),
        topics,
        clock,
        poll_s=settings.retry_poll_s,
        batch=settings.retry_batch,
        claim_lease_s=settings.claim_lease_s,
    )
    return Sender(settings, topics, store, transport, consumer, producer, stage, retry_loop)
