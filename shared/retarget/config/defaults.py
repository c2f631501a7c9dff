"""The bundled defaults every workspace inherits until it applies its own of the same name.

They are the files the product ships: the segmenter's campaigns folder and the composer's
templates folder (read where those services keep them, so there is one copy of each).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# layout files a template may extend or import; not templates of their own
LAYOUT_NAMES = frozenset({"base"})
_PARTS = {".subject.txt": "subject", ".html": "html", ".txt": "text"}


def bundled_campaigns() -> dict[str, dict[str, Any]]:
    """name -> the campaign file's mapping (services/segmenter/campaigns/*.yaml)."""
    from retarget.segmenter.settings import DEFAULT_CAMPAIGNS_DIR

    campaigns: dict[str, dict[str, Any]] = {}
    for path in sorted(DEFAULT_CAMPAIGNS_DIR.glob("*.yaml")):
        campaigns[path.stem] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return campaigns


def bundled_templates() -> dict[str, dict[str, str | None]]:
    """name -> {"subject", "html", "text"} (the composer's templates folder, layout left out)."""
    from retarget.composer.environment import BUNDLED_TEMPLATES

    return read_template_folder(BUNDLED_TEMPLATES)


def read_template_folder(folder: Path) -> dict[str, dict[str, str | None]]:
    """Templates of a folder: `<name>.subject.txt`, `<name>.html`, `<name>.txt` make template
    `name` (a part missing is None); `base.*` and `_*` are layout, not templates."""
    templates: dict[str, dict[str, str | None]] = {}
    for path in sorted(folder.iterdir()):
        found = template_part(path.name)
        if found is None or not path.is_file():
            continue
        name, part = found
        body = templates.setdefault(name, {"subject": None, "html": None, "text": None})
        body[part] = path.read_text(encoding="utf-8")
    return templates


def template_part(filename: str) -> tuple[str, str] | None:
    """("abandoned_cart", "subject") for "abandoned_cart.subject.txt"; None for layout or others."""
    for suffix, part in _PARTS.items():  # ".subject.txt" before ".txt"
        if filename.endswith(suffix):
            name = filename.removesuffix(suffix)
            if not name or name in LAYOUT_NAMES or name.startswith("_"):
                return None
            return name, part
    return None
