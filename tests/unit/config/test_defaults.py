"""The bundled defaults are the files the segmenter and the composer ship."""

from __future__ import annotations

from pathlib import Path

from retarget.config.defaults import bundled_campaigns, bundled_templates, read_template_folder


def test_bundled_campaigns_are_the_segmenter_files_by_name():
    campaigns = bundled_campaigns()
    assert "abandoned_cart" in campaigns
    assert all(body["name"] == name for name, body in campaigns.items())


def test_bundled_templates_leave_the_layout_out():
    templates = bundled_templates()
    assert "abandoned_cart" in templates and "base" not in templates and "_blocks" not in templates
    cart = templates["abandoned_cart"]
    assert cart["subject"] and cart["html"] and cart["text"]
    assert templates["post_purchase"]["text"] is None  # no .txt shipped: None, not ""


def test_a_template_folder_groups_the_three_parts_by_name(tmp_path: Path):
    (tmp_path / "welcome.subject.txt").write_text("Hi")
    (tmp_path / "welcome.html").write_text("<p>Hi</p>")
    (tmp_path / "bye.txt").write_text("Bye")
    (tmp_path / "base.html").write_text("layout")
    (tmp_path / "_blocks.html").write_text("macros")
    (tmp_path / "notes.md").write_text("not a template")
    assert read_template_folder(tmp_path) == {
        "bye": {"subject": None, "html": None, "text": "Bye"},
        "welcome": {"subject": "Hi", "html": "<p>Hi</p>", "text": None},
    }
