"""validate(): a normalised body, or ConfigInvalid naming the kind, the object, the field
and the reason. One test per rule, so deleting a rule fails its test."""

from __future__ import annotations

from typing import Any

import pytest

from retarget.config.defaults import bundled_campaigns, bundled_templates
from retarget.config.validation import ConfigInvalid, validate

IDENTITY = {"from_name": "Acme", "from_email": "news@acme.example", "postal_address": "2 Road, Town"}
CART = bundled_campaigns()["abandoned_cart"]


def invalid(kind: str, name: str, body: Any, reason: str) -> None:
    with pytest.raises(ConfigInvalid) as caught:
        validate(kind, name, body)  # type: ignore[arg-type]
    assert reason in str(caught.value), str(caught.value)


def test_every_bundled_default_is_valid():
    for name, body in bundled_campaigns().items():
        assert validate("campaign", name, body) == body
    for name, body in bundled_templates().items():
        assert validate("template", name, body) == body


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (CART | {"wait": "soon"}, "campaign abandoned_cart: field wait: 'soon' is not a duration"),
        (
            CART | {"name": "other"},
            "campaign abandoned_cart: field name: 'other' must be the campaign's name",
        ),
        (CART | {"surprise": 1}, "field surprise"),
        # past timedelta's range: an OverflowError (a 500), not a ValueError, before the fix
        (CART | {"wait": "1000000000000d"}, "field wait"),
        (CART | {"wait": 1e15}, "field wait"),
        (CART | {"wait": float("inf")}, "field wait"),
        (CART | {"cooldown": "99999999999w"}, "field cooldown"),
        # in range for timedelta, but entry_at + wait overflows datetime in the segmenter
        (CART | {"wait": "999999999d"}, "field wait"),
        # YAML's .nan/.inf: orjson would store null, silently changing what the file says
        (CART | {"conditions": {"cart_value_at_least": float("nan")}}, "not a finite number"),
        (CART | {"conditions": {"cart_value_at_least": float("inf")}}, "not a finite number"),
        ({k: v for k, v in CART.items() if k != "entry"}, "field entry"),
    ],
)
def test_campaigns_use_the_campaign_file_schema(body: dict[str, Any], reason: str):
    invalid("campaign", "abandoned_cart", body, reason)


def test_names_and_bodies_have_a_shape():
    invalid("campaign", "Abandoned-Cart", CART, "field name")
    invalid("template", "../welcome", {"subject": "Hi", "text": "x"}, "template ../welcome: field name")
    invalid("identity", "main", IDENTITY, "its name is empty")
    invalid("dkim", "bad selector", {}, "field name")
    invalid("template", "welcome\n", {"subject": "Hi", "text": "x"}, "template welcome\n: field name")
    invalid("dkim", "s1\n", {}, "field name")
    invalid("template", "welcome", ["not", "an", "object"], "must be an object")
    invalid("template", "welcome", {"subject": "Hi", "html": "x", "when": {1, 2}}, "not plain JSON")
    invalid("sandwich", "x", {}, "unknown kind")
    invalid("template", "welcome", {"subject": "Hi\x00", "html": "x"}, "NUL character")
    big = {"subject": "Hi", "html": "é" * 150_000, "text": "é" * 150_000}  # each part within its limit
    invalid("template", "welcome", big, "bytes as JSON; at most 524288")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"html": "<p>x</p>"}, "template welcome: field subject: Field required"),
        ({"subject": "", "html": "<p>x</p>"}, "field subject"),
        ({"subject": None, "html": "<p>x</p>"}, "field subject: required"),
        ({"subject": "Hi"}, "html or text is required"),
        ({"subject": "Hi", "html": "x" * 200_001}, "field html"),
        ({"subject": "Hi", "text": "line\n{{ name }"}, "field text: line 2: unexpected '}'"),
        ({"subject": "{% if %}", "html": "x"}, "field subject: line 1"),
    ],
)
def test_templates_need_a_subject_a_body_and_valid_jinja(body: dict[str, Any], reason: str):
    invalid("template", "welcome", body, reason)


def test_a_template_with_only_text_is_valid():
    assert validate("template", "welcome", {"subject": "Hi", "text": "Hello"}) == {
        "subject": "Hi",
        "html": None,
        "text": "Hello",
    }


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"from_email": "news@"}, "identity: field from_email: not a valid email address"),
        ({"reply_to": "a b@acme.example"}, "field reply_to"),
        ({"postal_address": "   "}, "field postal_address: must not be blank"),
        ({"timezone": "Mars/Olympus"}, "field timezone: 'Mars/Olympus' is not a known IANA timezone"),
        ({"link_domains": ["not a domain"]}, "field link_domains.0"),
        ({"from_name": ""}, "field from_name"),
    ],
)
def test_identity_rules(change: dict[str, Any], reason: str):
    invalid("identity", "", IDENTITY | change, reason)


def test_an_identity_is_normalised():
    body = validate("identity", "", IDENTITY | {"link_domains": ["Acme.Example"], "timezone": "Europe/Paris"})
    assert body["link_domains"] == ["acme.example"] and body["reply_to"] is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"consent_mode": "maybe"}, "policy: field consent_mode"),
        (
            {"quiet_hours": {"start": "9pm", "end": "08:00"}},
            "field quiet_hours.start: '9pm' is not a time HH:MM",
        ),
        ({"quiet_hours": {"start": "21:00", "end": "24:00"}}, "field quiet_hours.end"),
        ({"rate": {"per_s": -1, "burst": 1}}, "field rate.per_s"),
        ({"rate": {"per_s": float("inf"), "burst": 1}}, "not a finite number"),
        # what the sender's tables (integer, real) can't hold was a PostgreSQL error, i.e. a 503
        # "retry" that never succeeds (and a dry run that said valid)
        ({"rate": {"per_s": 1, "burst": 2**31}}, "field rate.burst"),
        ({"rate": {"per_s": 1e300, "burst": 1}}, "field rate.per_s"),
        ({"caps": [{"max_messages": 2**31, "window": "1d"}]}, "field caps.0.max_messages"),
        ({"caps": [{"max_messages": 1, "window": "25000d"}]}, "field caps.0.window"),
        # frequency_caps holds whole seconds (primary key campaign, window_s): 1s and 1.5s collide
        (
            {"caps": [{"max_messages": 1, "window": "1s"}, {"max_messages": 2, "window": "1.5s"}]},
            "two caps with the same campaign and window",
        ),
        ({"caps": [{"max_messages": 1, "window": "1000000000000d"}]}, "field caps.0.window"),
        ({"rate": {"per_s": 5, "burst": 0}}, "a limited rate needs a burst of at least 1"),
        ({"caps": [{"max_messages": 0, "window": "1d"}]}, "field caps.0.max_messages"),
        ({"caps": [{"max_messages": 1, "window": "0s"}]}, "window must be at least 1s"),
        (
            {"caps": [{"max_messages": 1, "window": "1d"}, {"max_messages": 2, "window": "24h"}]},
            "two caps with the same campaign and window",
        ),
    ],
)
def test_policy_rules(body: dict[str, Any], reason: str):
    invalid("policy", "", body, reason)


def test_a_policy_keeps_its_windows_as_written():
    body = {
        "consent_mode": "opt_in",
        "rate": {"per_s": 0, "burst": 0},
        "caps": [{"max_messages": 3, "window": "7d"}],
    }
    assert validate("policy", "", body) == body


def test_dkim_uses_its_registered_validator():
    invalid("dkim", "s2026", {"algorithm": "ed25519"}, "field domain")  # retarget.config.dkim.validate_dkim


def test_an_unbounded_optimal_send_time_is_refused_through_the_api_validation():
    invalid(
        "campaign", "abandoned_cart", CART | {"send_time": "optimal"}, "send_time: optimal needs max_delay"
    )
    body = CART | {"send_time": "optimal", "max_delay": "24h"}
    assert validate("campaign", "abandoned_cart", body)["max_delay"] == "24h"
