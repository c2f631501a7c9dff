"""The reference pages are generated from the code and must not drift from it."""

from __future__ import annotations

from retarget.cli.docs import METRIC_MODULES, SETTINGS_CLASSES, load_settings, metrics_of, pages


def test_the_reference_pages_match_the_code():
    for path, text in pages().items():
        assert path.read_text() == text, f"{path.name} is stale: run `retarget docs`"


def test_every_setting_says_what_it_is_for():
    undocumented = [
        f"{path}.{name}"
        for _, path in SETTINGS_CLASSES
        for name, field in load_settings(path).model_fields.items()
        if not field.description
    ]
    assert undocumented == []


def test_every_metric_is_named_for_the_product_and_explained():
    for _, module in METRIC_MODULES:
        for metric in metrics_of(module):
            assert metric._name.startswith("retarget_"), metric._name
            assert len(metric._documentation) > 10, metric._name
