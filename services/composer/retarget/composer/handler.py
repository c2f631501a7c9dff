"""The composer's stage handler: a batch of trigger records in, outbound messages out.

A trigger that can't be composed (undecodable, unknown workspace, template error, missing
variable, bad address or data — also an id the workspace look-up's database refuses —, a
malformed coupon spec, or a bug in composing it) goes to the dead-letter topic with
the reason and a metric, and the batch goes on: one bad trigger never stops the others or
blocks its partition. Only a failure to read the workspace or to store its coupon (PostgreSQL
down) escapes, so the
stage retries the batch instead of dead-lettering good triggers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol

import msgspec
from aiokafka import ConsumerRecord

from retarget.common.poison import describe, is_data_error
from retarget.common.schemas import TriggerFired, decoder, encode
from retarget.common.stage import Output, dead_letter
from retarget.common.topics import Topics, recipient_key
from retarget.common.workspaces import Workspace
from retarget.composer.compose import ComposeFailed, Composer
from retarget.composer.coupons import CouponIssuer
from retarget.composer.metrics import FAILED, RENDER_SECONDS, RENDERED
from retarget.composer.workspaces import UnknownWorkspace

log = logging.getLogger(__name__)
_trigger_decoder = decoder(TriggerFired)


class Workspaces(Protocol):
    async def get(self, workspace_id: str) -> Workspace: ...


class TriggerHandler:
    def __init__(
        self, composer: Composer, workspaces: Workspaces, topics: Topics, coupons: CouponIssuer
    ) -> None:
        self.composer = composer
        self.workspaces = workspaces
        self.topics = topics
        self.coupons = coupons

    async def handle(self, records: Sequence[ConsumerRecord]) -> list[Output]:
        outputs: list[Output | None] = [None] * len(records)  # in the records' order
        ready: list[tuple[int, ConsumerRecord, TriggerFired, Workspace]] = []
        for i, record in enumerate(records):
            try:
                trigger = _trigger_decoder.decode(record.value)
            except msgspec.DecodeError as exc:
                outputs[i] = self._dead(record, "unknown", "undecodable", f"undecodable trigger: {exc}")
                continue
            try:
                sender = await self.workspaces.get(trigger.workspace_id)
            except UnknownWorkspace as exc:
                reason = f"unknown workspace {exc}: create it with `retarget workspace create`"
                outputs[i] = self._dead(record, trigger.campaign, "unknown_workspace", reason)
                continue
            except Exception as exc:
                if not is_data_error(exc):  # PostgreSQL away: the stage retries the batch
                    raise
                # the id itself is unusable (a NUL byte PostgreSQL refuses): the same on every try
                outputs[i] = self._dead(record, trigger.campaign, "bad_data", describe(exc))
                continue
            ready.append((i, record, trigger, sender))
        # stored before the message exists: no email shows a code that isn't stored
        offers = await self.coupons.offers([(t, self.composer.coupon(t)) for _, _, t, _ in ready])
        failed = [o for o in offers if isinstance(o, BaseException) and not is_data_error(o)]
        if failed:  # PostgreSQL away: the stage retries the batch (issuing is idempotent per trigger)
            raise failed[0]
        for (i, record, trigger, sender), offer in zip(ready, offers, strict=True):
            if isinstance(offer, BaseException):
                outputs[i] = self._dead(record, trigger.campaign, "coupon", f"coupon: {describe(offer)}")
            else:
                outputs[i] = self._compose(record, offer.trigger, sender, offer.code)
        return [o for o in outputs if o is not None]

    def _compose(
        self, record: ConsumerRecord, trigger: TriggerFired, sender: Workspace, coupon: str | None
    ) -> Output:
        started = time.perf_counter()
        try:
            outbound = self.composer.compose(trigger, sender, coupon).outbound
            key = recipient_key(outbound.recipient)
        except ComposeFailed as exc:
            return self._dead(record, trigger.campaign, exc.label, str(exc))
        except Exception as exc:  # a bug on one trigger must not block the partition forever
            log.exception("composing a trigger failed unexpectedly", extra={"campaign": trigger.campaign})
            return self._dead(record, trigger.campaign, "internal", f"internal error: {exc!r}")
        RENDER_SECONDS.labels(trigger.campaign).observe(time.perf_counter() - started)
        RENDERED.labels(trigger.campaign).inc()
        return Output(self.topics.outbound, key, encode(outbound))

    def _dead(self, record: ConsumerRecord, campaign: str, label: str, reason: str) -> Output:
        FAILED.labels(campaign, label).inc()
        log.warning("trigger dead-lettered", extra={"campaign": campaign, "reason": reason})
        return dead_letter(record, stage="composer", reason=reason, topic=self.topics.dead_letter)
