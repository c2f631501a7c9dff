"""The writers' validation (retarget.config.validation) runs the composer's template check:
a misspelt variable, which a bare compile would let through, is refused with field and line."""

from __future__ import annotations

import pytest

from retarget.config.validation import ConfigInvalid, validate


def test_a_stored_template_is_checked_by_the_composers_sandbox_and_sample_render():
    html = '{% extends "base.html" %}\n{% block content %}\n{{ recipient.frist_name }}{% endblock %}'
    with pytest.raises(ConfigInvalid, match=r"template winter_sale: field html: line 3: .*frist_name"):
        validate("template", "winter_sale", {"subject": "Hi", "html": html, "text": None})
