"""`retarget templates apply|list --workspace W`: a workspace's email templates.

A folder holds `<template>.subject.txt`, `<template>.html` and `<template>.txt` (html or
text may be left out); `base.*` and `_*` are layout, not templates. A workspace inherits
the bundled templates until it applies its own of the same name; the composer renders the
version current when it composes (docs/management.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from retarget.cli._config import apply_all, config_service, fail, listed


def register(sub: argparse._SubParsersAction) -> None:
    templates = sub.add_parser("templates", help="a workspace's email templates (versioned, applied live)")
    templates_sub = templates.add_subparsers(dest="templates_command", required=True)

    apply = templates_sub.add_parser("apply", help="create or update the templates of a folder")
    apply.add_argument("--workspace", required=True, help="workspace id")
    apply.add_argument("folder", type=Path, metavar="DIR", help="<template>.subject.txt, .html, .txt files")
    apply.set_defaults(func=_apply)

    listing = templates_sub.add_parser("list", help="the templates a workspace uses (its own and inherited)")
    listing.add_argument("--workspace", required=True, help="workspace id")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=_list)


async def _apply(args: argparse.Namespace) -> int:
    from retarget.config.defaults import read_template_folder

    try:
        templates = read_template_folder(args.folder)
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{args.folder}: not readable ({exc}); nothing was stored")
        return 1
    if not templates:
        fail(f"{args.folder}: no templates (files <template>.subject.txt, <template>.html, <template>.txt)")
        return 1
    objects = [(f"{args.folder / name}.*", name, body) for name, body in templates.items()]
    async with config_service() as service:
        if service is None:
            return 2
        return await apply_all(service, args.workspace, "template", objects)


async def _list(args: argparse.Namespace) -> int:
    code, templates = await listed(args.workspace, "template")
    if code:
        return code
    for t in templates.values():
        parts = [part for part in ("subject", "html", "text") if t.body.get(part)]
        if args.json:
            print(json.dumps({"name": t.name, "source": t.source, "version": t.version, "parts": parts}))
        else:
            version = t.version if t.version is not None else "-"
            print(f"{t.name}\t{t.source}\tversion {version}\t{','.join(parts)}")
    return 0
