"""Builds the sender from settings: real adapters unless a test passes its own.

Nothing connects here; `Sender.start()` does, so building is cheap and import is inert.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from retarget.common.clock import Clock, SystemClock
from retarget.common.kafka import ensure_topics, make_consumer, make_producer
from retarget.common.reputation_settings import ReputationSettings
from retarget.common.stage import Stage
from retarget.common.topics import Topics
from retarget.config.applied import report_applied
from retarget.config.follower import ConfigFollower
from retarget.config.seal import SealKeyMissing, SealSettings, load_seal_key
from retarget.sender.adaptive_rate import AdaptiveRates
from retarget.sender.assignment import ShareListener
from retarget.sender.batch_admission import BatchAdmission
from retarget.sender.config_feed import FEED_KINDS, ConfigFeed, policy_invalidator, warn_if_keys_stay_sealed
from retarget.sender.delivery import Deliverer, Signer
from retarget.sender.dkim_feed import DkimSigner, FeedKeys
from retarget.sender.dkim_keys import DkimKeys
from retarget.sender.handler import STAGE_NAME, OutboundHandler
from retarget.sender.metrics import MAILBOX_PROVIDERS, SHUTDOWN_CANCELLED, SMTP_POOL_SIZE
from retarget.sender.pg_store import PostgresDeliveryStore
from retarget.sender.policies import PolicyCache, PolicyDefaults, PolicySource, PostgresPolicySource
from retarget.sender.policy import parse_caps, parse_domain_rates, parse_quiet_hours, parse_rate
from retarget.sender.publisher import EventPublisher, KafkaPublisher
from retarget.sender.ratelimit import RateLimiter
from retarget.sender.reputation_guard import ReputationGuard
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
    handler: OutboundHandler
    config: ConfigFeed
    seal_key: bytes | None = None
    seal_problem: str = ""
    reporting: asyncio.Task[None] | None = None
    shares: ShareListener | None = None  # None: a consumer a test passed, full share
    guard: ReputationGuard | None = None  # None: a test's store without PostgreSQL

    def assignment(self) -> dict[str, object]:
        """Shown by /readyz beside the problems: the partitions owned and the limit share."""
        return self.shares.describe() if self.shares is not None else {}

    async def start(self) -> None:
        if self.settings.create_topics:
            topics = [
                self.topics.outbound,
                self.topics.deliveries,
                self.topics.dead_letter,
                self.topics.config,
            ]
            await ensure_topics(self.settings, topics)
        await self.store.start()
        await self.config.start()  # keys and policies as of the feed's end before the first message
        warn_if_keys_stay_sealed(self.config, self.seal_key, self.seal_problem)
        instance = self.settings.sender_instance_id or f"{socket.gethostname()}:{os.getpid()}"
        self.reporting = asyncio.create_task(
            report_applied(self.settings.database_url, "sender", instance, self.config), name="config-applied"
        )
        if self.guard is not None:  # paused workspaces known before the first message
            await self.guard.refresh()
        await self.producer.start()
        await self.consumer.start()
        log.info("sender started", extra={"outbound": self.topics.outbound})

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`, then at most RETARGET_SHUTDOWN_GRACE_S more.

        On stop, messages waiting for tokens give up at once and those mid-SMTP finish and are
        recorded; the batch is then not committed (replayed after restart, where the send log
        answers for the finished ones). Whatever still runs after the grace is cancelled: a
        message cut off mid-SMTP stays 'claimed' and is never resent (see README).
        """
        self.handler.stop = stop
        tasks = [asyncio.create_task(self.stage.run(stop)), asyncio.create_task(self.retry_loop.run(stop))]
        if self.guard is not None:
            tasks.append(asyncio.create_task(self.guard.run(stop)))
        stopping = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([*tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
            for task in done & set(tasks):
                task.result()  # a loop that ended on its own before stop: raise its error
            _, late = await asyncio.wait(tasks, timeout=self.settings.shutdown_grace_s)
            if late:
                SHUTDOWN_CANCELLED.inc()
                log.warning("shutdown grace ran out; cancelling the work in hand", extra={"tasks": len(late)})
        finally:
            stopping.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

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
        if not self.config.ready:
            problems["config"] = "the configuration feed is not read to its end yet"
        return problems

    async def close(self) -> None:
        if self.reporting is not None:
            self.reporting.cancel()
            await asyncio.gather(self.reporting, return_exceptions=True)
        await self.config.stop()
        await self.consumer.stop()
        await self.producer.stop()
        await self.transport.close()
        await self.store.close()


def relay_pool(settings: SenderSettings) -> SmtpPool:
    """The connections to the relay, with the TLS the settings require."""
    return SmtpPool(
        settings.smtp_target(),
        size=settings.smtp_connections,
        timeout_s=settings.smtp_timeout_s,
        tls_verify=settings.smtp_tls_verify,
        tls_ca_file=settings.smtp_tls_ca_file,
        helo_name=settings.smtp_helo_name,
    )


def bootstrap(
    settings: SenderSettings,
    *,
    store: DeliveryStore | None = None,
    transport: MailTransport | None = None,
    consumer: AIOKafkaConsumer | None = None,
    producer: AIOKafkaProducer | None = None,
    publisher: EventPublisher | None = None,
    clock: Clock | None = None,
    policies: PolicySource | None = None,
    signer: Signer | None = None,
    config: ConfigFeed | None = None,
    seal: SealSettings | None = None,
    guard: ReputationGuard | None = None,
    reputation: ReputationSettings | None = None,
) -> Sender:
    topics = Topics(settings.topic_prefix)
    clock = clock or SystemClock()
    store = store or PostgresDeliveryStore(settings)
    transport = transport or relay_pool(settings)
    own_consumer = consumer is None
    consumer = consumer or make_consumer(
        settings,
        group_id=settings.sender_group,
        group_instance_id=settings.sender_instance_id,
        session_timeout_ms=settings.kafka_session_timeout_ms,
    )
    producer = producer or make_producer(settings)
    policy = RetryPolicy(
        initial_s=settings.retry_initial_s,
        max_interval_s=settings.retry_max_interval_s,
        max_age_s=settings.retry_max_age_s,
        max_attempts=settings.retry_max_attempts,
    )
    SMTP_POOL_SIZE.set(settings.smtp_connections)
    config = config or ConfigFollower(settings.kafka_bootstrap, topics.config, kinds=FEED_KINDS)
    seal_key, seal_problem = _seal_key(seal or SealSettings())
    if signer is None:
        keys = DkimKeys(settings.dkim_keys_dir, rescan_s=settings.dkim_rescan_s)
        keys.scan()
        signer = DkimSigner(keys, FeedKeys(config, seal_key), clock.now)
    named = MAILBOX_PROVIDERS | set(parse_domain_rates(settings.rate_domains))  # watched by name
    limiter = RateLimiter(
        domain_default=parse_rate(settings.rate_domain),
        domain_overrides=parse_domain_rates(settings.rate_domains),
        workspace_default=parse_rate(settings.rate_workspace),
        global_rate=parse_rate(settings.rate_global),
        adaptive=AdaptiveRates(settings.rate_adapt()),
        named_domains=named,
    )
    shares = None
    if own_consumer:  # subscribed here, with the listener that splits the limits by partitions
        shares = ShareListener(
            consumer, topics.outbound, limiter.use_share, partitions_guess=settings.topic_partitions
        )
        consumer.subscribe([topics.outbound], listener=shares)
    deliverer = Deliverer(
        store,
        transport,
        policy,
        clock,
        signer,
        max_in_flight=settings.smtp_connections,
        named_domains=named,
        domain_feedback=limiter,
    )
    if policies is None:
        defaults = PolicyDefaults(
            parse_caps(settings.frequency_caps), parse_quiet_hours(settings.quiet_hours)
        )
        pg = store if isinstance(store, PostgresDeliveryStore) else None
        if pg is None:
            raise ValueError("bootstrap needs `policies` when the store is not the PostgreSQL one")
        policies = PostgresPolicySource(lambda: pg.pool, defaults)
    policy_cache = PolicyCache(policies, settings.policy_cache_s)
    config.subscribe(policy_invalidator(policy_cache))
    if guard is None and isinstance(store, PostgresDeliveryStore):
        guard = reputation_guard(reputation or ReputationSettings(), store, clock)
    admission = BatchAdmission(store, policy_cache, clock, guard)
    handler = OutboundHandler(
        store,
        deliverer,
        topics,
        clock,
        admission,
        limiter,
        suppression_recheck_s=settings.suppression_recheck_s,
    )
    stage = Stage(
        STAGE_NAME,
        consumer,
        producer,
        handler,
        dead_letter_topic=topics.dead_letter,
        max_batch=settings.batch_size,
    )
    retry_loop = RetryLoop(
        store,
        deliverer,
        publisher or KafkaPublisher(producer),
        topics,
        clock,
        policy_cache,
        limiter,
        hold=guard,
        poll_s=settings.retry_poll_s,
        batch=settings.retry_batch,
        claim_lease_s=settings.claim_lease_s,
    )
    return Sender(
        settings,
        topics,
        store,
        transport,
        consumer,
        producer,
        stage,
        retry_loop,
        handler,
        config,
        seal_key,
        seal_problem,
        shares=shares,
        guard=guard,
    )


def reputation_guard(
    settings: ReputationSettings, store: PostgresDeliveryStore, clock: Clock
) -> ReputationGuard:
    return ReputationGuard(
        lambda: store.pool,
        clock,
        settings.thresholds(),
        window_h=settings.window_h,
        check_s=settings.check_s,
        hold_s=settings.hold_s,
        transactional=settings.transactional(),
    )


def _seal_key(seal: SealSettings) -> tuple[bytes | None, str]:
    """The key that opens DKIM keys from the feed; without it, such workspaces are deferred (README)."""
    try:
        return load_seal_key(seal), ""
    except SealKeyMissing as exc:
        return None, str(exc)
