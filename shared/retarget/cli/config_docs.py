"""`retarget config-docs [--check]`: the configuration reference, generated from the settings classes.

docs/configuration.md is this command's output; a unit test fails when the two differ, so the
reference can't drift from the code. Run `retarget config-docs` after changing a setting.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings

# (title, "module:Class"), in the order a reader meets them
SETTINGS_CLASSES = [
    ("Every service", "retarget.common.settings:CommonSettings"),
    ("ingest", "retarget.ingest.settings:IngestSettings"),
    ("segmenter", "retarget.segmenter.settings:SegmenterSettings"),
    ("composer", "retarget.composer.settings:ComposerSettings"),
    ("sender", "retarget.sender.settings:SenderSettings"),
]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("config-docs", help="write docs/configuration.md from the settings classes")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    parser.set_defaults(func=_run)


def doc_path() -> Path:
    from retarget.devstack.paths import repo_root

    return repo_root() / "docs" / "configuration.md"


def _run(args: argparse.Namespace) -> int:
    text = render()
    path = doc_path()
    if args.check:
        current = path.read_text() if path.exists() else ""
        if current != text:
            print(f"{path} is out of date: run `retarget config-docs`")
            return 1
        return 0
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")
    return 0


def _load(path: str) -> type[BaseSettings]:
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
    return f"`{value}`"


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Every setting is an environment variable with the `RETARGET_` prefix. Generated from the",
        "settings classes by `retarget config-docs`; a test keeps this file in step with the code.",
        "Secrets have no defaults: a service that needs one refuses to start without it.",
    ]
    common = set(_load(SETTINGS_CLASSES[0][1]).model_fields)
    for title, path in SETTINGS_CLASSES:
        cls = _load(path)
        prefix = cls.model_config.get("env_prefix", "")
        own = [n for n in cls.model_fields if cls is _load(SETTINGS_CLASSES[0][1]) or n not in common]
        lines += ["", f"## {title}", "", f"`{path.replace(':', '.')}`", ""]
        lines += ["| variable | default | meaning |", "|---|---|---|"]
        for name in own:
            field = cls.model_fields[name]
            meaning = (field.description or "").replace("|", "\\|")
            lines.append(f"| `{prefix}{name.upper()}` | {_default(field)} | {meaning} |")
    return "\n".join(lines) + "\n"
