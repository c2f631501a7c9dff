"""The composer's producer batches many emails per partition: in aiokafka's default 16 KB
batch a ~9 KB outbound record sat alone, so each was compressed, framed and drained on its
own (bench/bench_composer_process.py: about a quarter of the composer's CPU per email)."""

from __future__ import annotations

from datetime import timedelta

from retarget.common.clock import SystemClock
from retarget.common.schemas import encode
from retarget.composer.bootstrap import make_outbound_producer
from retarget.composer.compose import Composer
from retarget.composer.render import CampaignTemplates
from retarget.composer.samples import SAMPLE_WORKSPACE, sample_trigger
from retarget.composer.settings import ComposerSettings

BROKER_MESSAGE_MAX_BYTES = 1_048_588  # Kafka's default message.max.bytes: a batch must fit


async def test_one_producer_batch_holds_dozens_of_emails_and_fits_the_broker() -> None:
    composer = Composer(
        CampaignTemplates(),
        SystemClock(),
        link_secret=b"secret",
        public_url="https://track.example",
        link_ttl=timedelta(days=60),
    )
    record = encode(composer.compose(sample_trigger("abandoned_cart"), SAMPLE_WORKSPACE).outbound)
    settings = ComposerSettings(link_secret="secret", kafka_bootstrap="127.0.0.1:1")
    batch = make_outbound_producer(settings).create_batch()
    appended = 0
    while batch.append(key=None, value=record, timestamp=None) is not None:
        appended += 1
    assert appended >= 20
    assert appended * len(record) < BROKER_MESSAGE_MAX_BYTES
