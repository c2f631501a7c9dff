"""From a trigger to an outbound message: context, links, rendering, headers.

`Composer.compose` is the whole decision for one trigger; `Composer.handle` is the stage
handler: it decodes a batch, composes each trigger, and sends what can't be composed
(bad record, template error, bad address, unknown workspace) to the dead-letter topic with
the reason, so one bad trigger never stops the others.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import jinja2
import msgspec
from aiokafka import ConsumerRecord

from retarget.common.clock import Clock
from retarget.common.identity import email_digest, message_id_for, rfc5322_message_id
from retarget.common.schemas import OutboundMessage, TriggerFired, decoder, encode
from retarget.common.stage import Output, dead_letter
from retarget.common.tokens import LinkClaims, sign
from retarget.common.topics import Topics, domain_key
from retarget.common.workspaces import Workspace
from retarget.composer.message import BadRecipient, Envelope, build_message
from retarget.composer.metrics import FAILED, RENDER_SECONDS, RENDERED
from retarget.composer.render import TemplateFailed, render
from retarget.composer.workspaces import CachedWorkspaces, UnknownWorkspace, sender_domain

log = logging.getLogger(__name__)
_trigger_decoder = decoder(TriggerFired)


class Composer:
    def __init__(
        self,
        env: jinja2.Environment,
        workspaces: CachedWorkspaces,
        topics: Topics,
        clock: Clock,
        *,
        link_secret: bytes,
        public_url: str,
        link_ttl: timedelta,
    ) -> None:
        self.env = env
        self.workspaces = workspaces
        self.topics = topics
        self.clock = clock
        self.link_secret = link_secret
        self.public_url = public_url.rstrip("/")
        self.link_ttl = link_ttl

    async def handle(self, records: Sequence[ConsumerRecord]) -> list[Output]:
        outputs = []
        for record in records:
            reason = None
            try:
                trigger = _trigger_decoder.decode(record.value)
                sender = await self.workspaces.get(trigger.workspace_id)
                outputs.append(self.compose(trigger, sender))
                RENDERED.labels(trigger.campaign).inc()
                continue
            except msgspec.DecodeError as exc:
                reason, label, campaign = f"undecodable trigger: {exc}", "undecodable", "unknown"
            except UnknownWorkspace as exc:
                reason, label, campaign = f"unknown workspace {exc}", "unknown_workspace", trigger.campaign
            except TemplateFailed as exc:
                reason, label, campaign = f"template error: {exc}", "template", trigger.campaign
            except BadRecipient as exc:
                reason, label, campaign = str(exc), "bad_recipient", trigger.campaign
            FAILED.labels(campaign, label).inc()
            log.warning("trigger dead-lettered", extra={"reason": reason})
            outputs.append(
                dead_letter(record, stage="composer", reason=reason, topic=self.topics.dead_letter)
            )
        return outputs

    def compose(self, trigger: TriggerFired, sender: Workspace) -> Output:
        started = time.perf_counter()
        links = self._links(trigger)
        context: dict[str, Any] = {
            "recipient": msgspec.structs.asdict(trigger.recipient),
            "cart": [msgspec.structs.asdict(line) for line in trigger.cart],
            "incentive": trigger.incentive,
            "coupon": self.coupon(trigger),
            "data": trigger.data,
            "sender": sender,
            "links": links,
        }
        rendered = render(self.env, trigger.template, context)
        envelope = Envelope(
            to_email=trigger.recipient.email,
            to_name=" ".join(filter(None, [trigger.recipient.first_name, trigger.recipient.last_name]))
            or None,
            message_id=rfc5322_message_id(trigger.trigger_id, sender_domain(sender)),
            date=self.clock.now(),
            unsubscribe_url=links["unsubscribe"],
            unsubscribe_mailto=f"mailto:unsubscribe@{sender_domain(sender)}?subject=unsubscribe-{trigger.trigger_id}",
            feedback_id=f"{trigger.campaign}:{trigger.workspace_id}:retarget",
        )
        raw = build_message(rendered, sender, envelope)
        outbound = OutboundMessage(
            message_id=message_id_for(trigger.trigger_id),
            trigger_id=trigger.trigger_id,
            workspace_id=trigger.workspace_id,
            profile_id=trigger.profile_id,
            campaign=trigger.campaign,
            recipient=trigger.recipient.email,
            mail_from=sender.from_email,
            raw=raw.decode("utf-8", "surrogateescape"),
            created_at=self.clock.now(),
            recipient_timezone=trigger.recipient.timezone,
        )
        RENDER_SECONDS.labels(trigger.campaign).observe(time.perf_counter() - started)
        return Output(self.topics.outbound, domain_key(trigger.recipient.email), encode(outbound))

    def coupon(self, trigger: TriggerFired) -> str:
        """Unique per recipient and campaign, stable for the same trigger (a replay shows the same code)."""
        mac = hmac.new(self.link_secret, f"coupon:{trigger.trigger_id}".encode(), hashlib.sha256)
        return "RT-" + mac.hexdigest()[:10].upper()

    def _links(self, trigger: TriggerFired) -> dict[str, str]:
        expires = int((self.clock.now() + self.link_ttl).timestamp())
        base: dict[str, Any] = {
            "message_id": message_id_for(trigger.trigger_id),
            "workspace_id": trigger.workspace_id,
            "campaign": trigger.campaign,
            "profile_id": trigger.profile_id,
            "expires": expires,
        }
        unsubscribe = LinkClaims(
            kind="unsubscribe", recipient_hash=email_digest(trigger.recipient.email).hex(), **base
        )
        opened = LinkClaims(kind="open", **base)
        return {
            "unsubscribe": f"{self.public_url}/t/u/{sign(unsubscribe, self.link_secret)}",
            "open_pixel": f"{self.public_url}/t/o/{sign(opened, self.link_secret)}.gif",
            "shop": f"{self.public_url}/",
        }
