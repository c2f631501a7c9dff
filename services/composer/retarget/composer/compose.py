"""From a trigger and its workspace to a complete outbound message. Pure: no I/O.

Steps: check the recipient's address → sign the message's links → build the template
context → render subject, HTML and text (the workspace's own templates, or the bundled
ones) → rewrite every link to a tracked one → derive the
text from the HTML when the campaign has no text template → write the RFC 5322 message.

Whatever makes a trigger impossible to compose raises ComposeFailed with a reason label
(the failure metric's) and a message for the dead letter; retrying such a trigger can't help.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import timedelta

from retarget.common.bounces import bounce_address
from retarget.common.clock import Clock
from retarget.common.identity import email_digest, message_id_for, rfc5322_message_id
from retarget.common.link_domains import allowed_link_domains
from retarget.common.schemas import OutboundMessage, TriggerFired
from retarget.common.workspaces import Workspace
from retarget.composer.addresses import BadAddress, parse_address
from retarget.composer.context import BadTriggerData, build_context
from retarget.composer.html_text import html_to_text
from retarget.composer.links import LinkGuard, MessageLinks
from retarget.composer.message import Envelope, build_message
from retarget.composer.render import CampaignTemplates, RenderedEmail, TemplateFailed

_TRIGGER_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class ComposeFailed(ValueError):
    """This trigger can never become a message. `label` is the failure metric's reason."""

    def __init__(self, label: str, message: str) -> None:
        super().__init__(message)
        self.label = label


@dataclass(frozen=True)
class Composed:
    outbound: OutboundMessage
    rendered: RenderedEmail  # the final parts: tracked links, text always present
    destinations: dict[str, str]  # link destination → its tracked URL


class Composer:
    def __init__(
        self,
        templates: CampaignTemplates,
        clock: Clock,
        *,
        link_secret: bytes,
        public_url: str,
        link_ttl: timedelta,
        unsubscribe_ttl: timedelta = timedelta(days=400),
    ) -> None:
        self.templates = templates
        self.clock = clock
        self.link_secret = link_secret
        self.public_url = public_url.rstrip("/")
        self.link_ttl = link_ttl
        self.unsubscribe_ttl = unsubscribe_ttl

    def compose(self, trigger: TriggerFired, sender: Workspace, coupon: str | None = None) -> Composed:
        """`coupon`: the stored code to show (composer.coupons); None shows the derived one."""
        if not _TRIGGER_ID.match(trigger.trigger_id):  # it becomes the Message-ID's left part
            raise ComposeFailed("bad_data", f"trigger_id {trigger.trigger_id[:80]!r} is not a plain id")
        try:
            parse_address(trigger.recipient.email)
        except BadAddress as exc:
            raise ComposeFailed("bad_recipient", f"recipient: {exc}") from exc
        try:
            _, domain = parse_address(sender.from_email)
        except BadAddress as exc:
            raise ComposeFailed("bad_sender", f"workspace {sender.id} from_email: {exc}") from exc
        now = self.clock.now()
        message_id = message_id_for(trigger.trigger_id)
        allowed = allowed_link_domains(sender)
        # the shop: the first link domain (by default the from domain), so it is always allowed
        site_url = f"https://{allowed[0] if allowed else domain}/"
        links = MessageLinks(
            secret=self.link_secret,
            public_url=self.public_url,
            site_url=site_url,
            message_id=message_id,
            workspace_id=trigger.workspace_id,
            campaign=trigger.campaign,
            profile_id=trigger.profile_id,
            expires=int((now + self.link_ttl).timestamp()),
            issued=int(now.timestamp()),
            unsubscribe_expires=int((now + self.unsubscribe_ttl).timestamp()),
            recipient_hash=email_digest(trigger.recipient.email).hex(),
            guard=LinkGuard(allowed),
        )
        unsubscribe = links.unsubscribe()
        page_links = {"unsubscribe": unsubscribe, "open_pixel": links.open_pixel(), "shop": site_url}
        try:
            context = build_context(trigger, sender, page_links, coupon or self.coupon(trigger), site_url)
            rendered = self.templates.render(trigger.template, context, sender.id, trigger.subject)
        except BadTriggerData as exc:
            raise ComposeFailed("bad_data", f"trigger data: {exc}") from exc
        except TemplateFailed as exc:
            label = "missing_variable" if exc.missing_variable else "template"
            label = "template_limit" if exc.over_limit else label
            raise ComposeFailed(label, f"template error: {exc}") from exc
        html = links.rewrite_html(rendered.html) if rendered.html is not None else None
        if rendered.text is not None:
            text = links.rewrite_text(rendered.text)
        else:
            assert html is not None  # render.py refuses a template with neither
            text = html_to_text(html)
        envelope = Envelope(
            from_email=sender.from_email,
            from_name=sender.from_name,
            to_email=trigger.recipient.email,
            to_name=context["recipient"]["name"],
            reply_to=sender.reply_to,
            message_id=rfc5322_message_id(trigger.trigger_id, domain),
            date=now,
            unsubscribe_url=unsubscribe,
            unsubscribe_mailto=f"mailto:unsubscribe@{domain}?subject=unsubscribe%20{unsubscribe.rsplit('/', 1)[1]}",
            feedback_id=":".join(
                part.replace(":", "-") for part in (trigger.campaign, trigger.workspace_id, "retarget")
            ),
        )
        try:
            raw = build_message(rendered.subject, text, html, envelope)
        except BadAddress as exc:  # Reply-To: the only address not checked above
            raise ComposeFailed("bad_sender", f"workspace {sender.id} reply_to: {exc}") from exc
        outbound = OutboundMessage(
            message_id=message_id,
            trigger_id=trigger.trigger_id,
            workspace_id=trigger.workspace_id,
            profile_id=trigger.profile_id,
            campaign=trigger.campaign,
            recipient=trigger.recipient.email.strip(),
            # VERP: a bounce mailed back later names this send-log entry (retarget.common.bounces)
            mail_from=bounce_address(message_id, domain, self.link_secret) or sender.from_email,
            raw=raw,
            created_at=now,
            recipient_timezone=trigger.recipient.timezone,
            recipient_consent=trigger.recipient.consent,
        )
        return Composed(outbound, RenderedEmail(rendered.subject, html, text), links.destinations())

    def coupon(self, trigger: TriggerFired) -> str:
        """Unique per recipient and campaign, stable for the same trigger (a replay shows the
        same code): trigger_id already hashes campaign, profile and entry event."""
        mac = hmac.new(self.link_secret, f"coupon:{trigger.trigger_id}".encode(), hashlib.sha256)
        return "RT-" + mac.hexdigest()[:10].upper()
