"""`retarget preview`: renders a campaign without Kafka or PostgreSQL, or names the broken line."""

from __future__ import annotations

import email
import json
import shutil
from email.policy import default as default_policy
from pathlib import Path

import pytest

from retarget.cli.main import main
from retarget.composer.environment import BUNDLED_TEMPLATES


def test_preview_writes_eml_and_html_and_prints_the_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    profile = tmp_path / "ann.json"
    profile.write_text(json.dumps({"recipient": {"email": "bo@example.com", "first_name": "Bo"}}))
    code = main(
        ["preview", "--campaign", "abandoned_cart", "--profile", str(profile), "--out", str(tmp_path)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "Bo, you left something in your cart" in printed and "Trail Boot" in printed
    msg = email.message_from_bytes((tmp_path / "abandoned_cart.eml").read_bytes(), policy=default_policy)
    assert msg["To"] == "Bo <bo@example.com>" and msg["List-Unsubscribe-Post"]
    assert "Trail Boot" in (tmp_path / "abandoned_cart.html").read_text()


def test_preview_of_a_broken_template_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    templates = tmp_path / "templates"
    shutil.copytree(BUNDLED_TEMPLATES, templates)
    html = templates / "abandoned_cart.html"
    html.write_text(
        html.read_text().replace("{{ product_table(", "{{ recipient.shoe_size }}{{ product_table(")
    )
    code = main(
        ["preview", "--campaign", "abandoned_cart", "--templates", str(templates), "--out", str(tmp_path)]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "abandoned_cart.html:7" in err and "shoe_size" in err
    assert not (tmp_path / "abandoned_cart.eml").exists()
