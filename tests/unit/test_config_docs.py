"""docs/configuration.md is generated from the settings classes and must not drift from them."""

from __future__ import annotations

from retarget.cli.config_docs import SETTINGS_CLASSES, _load, doc_path, render


def test_the_configuration_reference_matches_the_settings_classes():
    assert doc_path().read_text() == render(), "docs/configuration.md is stale: run `retarget config-docs`"


def test_every_setting_says_what_it_is_for():
    undocumented = [
        f"{path}.{name}"
        for _, path in SETTINGS_CLASSES
        for name, field in _load(path).model_fields.items()
        if not field.description
    ]
    assert undocumented == []
