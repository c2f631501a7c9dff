"""`retarget docs [--check]`: the reference pages generated from the code.

docs/configuration.md comes from the settings classes, docs/metrics.md from the metric
definitions; a unit test fails when either file differs from what this command writes, so
the references can't drift. Run `retarget docs` after changing a setting or a metric.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

from prometheus_client.metrics import MetricWrapperBase
from pydantic_settings import BaseSettings

# (title, "module:Class"), in the order a reader meets them
SETTINGS_CLASSES = [
    ("Every service", "retarget.common.settings:CommonSettings"),
    ("ingest", "retarget.ingest.settings:IngestSettings"),
    ("segmenter", "retarget.segmenter.settings:SegmenterSettings"),
    ("composer", "retarget.composer.settings:ComposerSettings"),
    ("sender", "retarget.sender.settings:SenderSettings"),
    ("privacy requests (ingest, CLI)", "retarget.common.privacy_requests:PrivacySettings"),
    ("DKIM keys as configuration (ingest, sender, CLI)", "retarget.config.dkim_settings:DkimSettings"),
    ("reputation guard (sender, ingest, CLI)", "retarget.common.reputation_settings:ReputationSettings"),
    ("the demo shop (python -m retarget.demo.shop)", "retarget.demo.shop.settings:ShopSettings"),
]
METRIC_MODULES = [
    ("Every pipeline stage (composer, sender)", "retarget.common.metrics"),
    ("ingest", "retarget.ingest.metrics"),
    ("segmenter", "retarget.segmenter.metrics"),
    ("composer", "retarget.composer.metrics"),
    ("sender", "retarget.sender.metrics"),
]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("docs", help="write docs/configuration.md and docs/metrics.md from the code")
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    parser.set_defaults(func=_run)


def pages() -> dict[Path, str]:
    from retarget.devstack.paths import repo_root

    docs = repo_root() / "docs"
    return {docs / "configuration.md": render_configuration(), docs / "metrics.md": render_metrics()}


def _run(args: argparse.Namespace) -> int:
    stale = 0
    for path, text in pages().items():
        current = path.read_text() if path.exists() else ""
        if current == text:
            continue
        if args.check:
            print(f"{path.name} is out of date: run `retarget docs`")
            stale += 1
        else:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    return 1 if stale else 0


def load_settings(path: str) -> type[BaseSettings]:
    module, _, name = path.partition(":")
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, BaseSettings)
    return cls


def _default(field: Any) -> str:
    if field.is_required():
        return "**required** (no default)"
    value = field.get_default(call_default_factory=True)
    if hasattr(value, "get_secret_value"):
        return "*(secret)*"
    from retarget.devstack.paths import repo_root

    # a default computed from where the code lives is shown relative to the checkout
    return f"`{str(value).replace(str(repo_root()), '<checkout>')}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render_configuration() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Every setting is an environment variable with the `RETARGET_` prefix. Generated from the",
        "settings classes by `retarget docs`; a test keeps this file in step with the code.",
        "Secrets have no defaults: a service that needs one refuses to start without it.",
    ]
    base = load_settings(SETTINGS_CLASSES[0][1])
    for title, path in SETTINGS_CLASSES:
        cls = load_settings(path)
        prefix = cls.model_config.get("env_prefix", "")
        own = [n for n in cls.model_fields if cls is base or n not in base.model_fields]
        lines += ["", f"## {title}", "", f"`{path.replace(':', '.')}`", ""]
        lines += ["| variable | default | meaning |", "|---|---|---|"]
        for name in own:
            field = cls.model_fields[name]
            lines.append(
                f"| `{prefix}{name.upper()}` | {_default(field)} | {_cell(field.description or '')} |"
            )
    return "\n".join(lines) + "\n"


def metrics_of(module_name: str) -> list[MetricWrapperBase]:
    module = importlib.import_module(module_name)
    found = {id(v): v for v in vars(module).values() if isinstance(v, MetricWrapperBase)}
    return sorted(found.values(), key=lambda m: m._name)


def render_metrics() -> str:
    lines = [
        "# Metrics reference",
        "",
        "Every service serves Prometheus text on `/metrics`. Generated from the metric definitions",
        "by `retarget docs`; a test keeps this file in step with the code. Counters are exposed",
        "with a `_total` suffix; histograms as `_bucket`, `_sum` and `_count`.",
    ]
    for title, module in METRIC_MODULES:
        lines += ["", f"## {title}", "", f"`{module}`", ""]
        lines += ["| metric | type | labels | meaning |", "|---|---|---|---|"]
        for metric in metrics_of(module):
            labels = ", ".join(f"`{label}`" for label in metric._labelnames) or "—"
            lines.append(f"| `{metric._name}` | {metric._type} | {labels} | {_cell(metric._documentation)} |")
    return "\n".join(lines) + "\n"
