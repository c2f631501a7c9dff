"""An A/B variant's subject line replaces the template's; a broken one is dead-lettered."""

from __future__ import annotations

import email
from email.policy import default as default_policy

import msgspec

from retarget.common.schemas import OutboundMessage, encode

from .test_compose import composer, record, trigger


async def test_a_variant_subject_replaces_the_templates_in_the_sandbox():
    variant = trigger(arm="b", subject="{{ recipient.first_name }}, still thinking? {{ 6 * 7 }}")
    [out] = await composer().handle([record(encode(variant))])
    raw = msgspec.json.decode(out.value, type=OutboundMessage).raw
    assert email.message_from_string(raw, policy=default_policy)["Subject"] == "Ann, still thinking? 42"


async def test_without_a_variant_subject_the_template_subject_stays():
    [out] = await composer().handle([record(encode(trigger(arm="default")))])
    raw = msgspec.json.decode(out.value, type=OutboundMessage).raw
    subject = email.message_from_string(raw, policy=default_policy)["Subject"]
    assert subject == "Ann, you left something in your cart"


async def test_a_broken_variant_subject_is_dead_lettered_naming_it():
    [out] = await composer().handle([record(encode(trigger(subject="{{ recipient.__class__ }}")))])
    assert out.topic == "t.dead-letter.v1"
    assert "variant subject" in msgspec.json.decode(out.value)["reason"]
    [out] = await composer().handle([record(encode(trigger(subject="{% if %}")))])
    assert out.topic == "t.dead-letter.v1"
    assert "variant subject" in msgspec.json.decode(out.value)["reason"]
