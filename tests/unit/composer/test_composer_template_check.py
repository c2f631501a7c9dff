"""template_check: what the writers call before storing a template — field and line named."""

from __future__ import annotations

from typing import Any

import pytest

from retarget.composer.environment import BUNDLED_TEMPLATES
from retarget.composer.samples import CAMPAIGNS
from retarget.composer.template_check import MAX_BODY, check

CONTENT = '{% extends "base.html" %}\n{% block content %}\n<p>Hi {{ recipient.first_name }}</p>\n'


def body(**fields: Any) -> dict[str, Any]:
    return {"subject": "Hi {{ recipient.first_name }}", "html": CONTENT + "{% endblock %}", **fields}


def bundled(name: str) -> dict[str, str | None]:
    def read(file: str) -> str | None:
        path = BUNDLED_TEMPLATES / file
        return path.read_text() if path.exists() else None

    return {"subject": read(f"{name}.subject.txt"), "html": read(f"{name}.html"), "text": read(f"{name}.txt")}


@pytest.mark.parametrize("name", CAMPAIGNS)
def test_every_bundled_template_passes(name: str):
    assert check(name, bundled(name))["subject"]


def test_a_good_body_comes_back_normalised():
    assert check("winter_sale", body(text="  ")) == {
        "subject": "Hi {{ recipient.first_name }}",
        "html": CONTENT + "{% endblock %}",
        "text": None,
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"html": CONTENT + "<p>{{ cart[0].name }</p>\n{% endblock %}"},
            "field html: line 4: unexpected '}'",
        ),
        ({"html": CONTENT + "{{ recipient.frist_name }}\n{% endblock %}"}, "field html: line 4: "),
        (
            {"html": CONTENT + "{{ 'x' | shout }}\n{% endblock %}"},
            "field html: line 4: No filter named 'shout'",
        ),
        ({"subject": "Hi {{ recipient.first_name "}, "field subject: line 1: "),
        ({"subject": "{{ coupn }}"}, "field subject: line 1: 'coupn' is undefined"),
        (
            {"html": None, "text": "{% extends 'base.txt' %}\n{% block content %}\n{{ nope }}{% endblock %}"},
            "field text: line 3: 'nope' is undefined",
        ),
        (
            {"html": CONTENT + "{% include 'other-ws\x1f1\x1fsecret.html' %}{% endblock %}"},
            "field html: line 4: template",
        ),
        (
            {"html": CONTENT + "{% include '../../../etc/passwd' %}{% endblock %}"},
            "field html: line 4: template ../../../etc/passwd not found",
        ),
    ],
)
def test_a_template_error_names_the_field_and_the_line(fields: dict[str, Any], message: str):
    with pytest.raises(ValueError) as refused:
        check("winter_sale", body(**fields))
    assert str(refused.value).startswith(message), str(refused.value)


def test_a_misspelt_variable_is_named():
    with pytest.raises(ValueError, match="frist_name"):
        check("winter_sale", body(html=CONTENT + "{{ recipient.frist_name }}\n{% endblock %}"))


@pytest.mark.parametrize(
    ("name", "fields", "message"),
    [
        ("winter_sale", {"subject": None}, "field subject: required"),
        ("winter_sale", {"subject": "   "}, "field subject: required"),
        ("winter_sale", {"subject": "one\ntwo"}, "field subject: line 2: the subject is one line"),
        ("winter_sale", {"html": None, "text": None}, "field html: html or text is required"),
        ("winter_sale", {"html": 3}, "field html: a string or null, not int"),
        ("winter_sale", {"html": "x" * (MAX_BODY + 1)}, "field html: 100,001 characters, more than 100,000"),
        ("winter_sale", {"subject": "x" * 1_001}, "field subject: 1,001 characters"),
        ("winter_sale", {"subjet": "typo"}, "field subjet: unknown"),
        ("base", {}, "name: 'base' is not a template name"),
        ("../x", {}, "name: '../x' is not a template name"),
        ("Winter Sale", {}, "name: 'Winter Sale'"),
    ],
)
def test_the_shape_is_checked_first(name: str, fields: dict[str, Any], message: str):
    with pytest.raises(ValueError) as refused:
        check(name, body(**fields))
    assert str(refused.value).startswith(message), str(refused.value)


def test_a_template_of_a_new_name_may_use_every_sample_variable():
    html = (
        CONTENT
        + "{{ cart[0].name }} {{ order.order_id }} {{ trial.plan }} {{ survey_url }} {{ products[0].name }}{% endblock %}"
    )
    assert check("spring_promo", body(html=html))["html"] == html
