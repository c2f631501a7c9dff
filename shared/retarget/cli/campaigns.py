"""`retarget campaigns apply|list|disable|delete --workspace W`: a workspace's campaigns.

A workspace inherits the bundled campaigns until it applies its own of the same name;
deleting one hides the bundled one of that name. Every change is a new version in
PostgreSQL, sent to the segmenter through the change feed (docs/management.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from retarget.cli._config import apply_all, author, config_service, effective, fail, listed


def register(sub: argparse._SubParsersAction) -> None:
    campaigns = sub.add_parser("campaigns", help="a workspace's campaigns (versioned, applied live)")
    campaigns_sub = campaigns.add_subparsers(dest="campaigns_command", required=True)

    apply = campaigns_sub.add_parser("apply", help="create or update campaigns from YAML files")
    apply.add_argument("--workspace", required=True, help="workspace id")
    apply.add_argument("files", nargs="+", type=Path, metavar="FILE", help="campaign YAML files")
    apply.set_defaults(func=_apply)

    listing = campaigns_sub.add_parser("list", help="the campaigns a workspace uses (its own and inherited)")
    listing.add_argument("--workspace", required=True, help="workspace id")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=_list)

    disable = campaigns_sub.add_parser("disable", help="store a version with enabled: false")
    disable.add_argument("--workspace", required=True, help="workspace id")
    disable.add_argument("name")
    disable.set_defaults(func=_disable)

    delete = campaigns_sub.add_parser("delete", help="delete a campaign (also hides the bundled one)")
    delete.add_argument("--workspace", required=True, help="workspace id")
    delete.add_argument("name")
    delete.set_defaults(func=_delete)


def _read(path: Path) -> tuple[str, Any]:
    """(the campaign's name, the file's mapping); ValueError saying what is wrong with the file."""
    import yaml

    from retarget.config.yaml_text import load_yaml  # as the API reads bodies: no "billion laughs"

    try:
        body = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: not readable YAML: {exc}") from None
    except RecursionError:
        raise ValueError(f"{path}: not readable YAML: nested too deeply") from None
    if not isinstance(body, dict):
        raise ValueError(f"{path}: the file must hold one mapping (name, entry, wait, ...)")
    name = body.get("name")
    return (name if isinstance(name, str) else path.stem), body


async def _apply(args: argparse.Namespace) -> int:
    objects = []
    for path in args.files:
        try:
            name, body = _read(path)
        except ValueError as exc:
            fail(f"{exc}; nothing was stored")
            return 1
        objects.append((str(path), name, body))
    async with config_service() as service:
        if service is None:
            return 2
        return await apply_all(service, args.workspace, "campaign", objects)


async def _list(args: argparse.Namespace) -> int:
    code, campaigns = await listed(args.workspace, "campaign")
    if code:
        return code
    for c in campaigns.values():
        enabled = c.body.get("enabled", True) is not False
        if args.json:
            print(json.dumps({"name": c.name, "source": c.source, "version": c.version, "enabled": enabled}))
        else:
            version = c.version if c.version is not None else "-"
            print(f"{c.name}\t{c.source}\tversion {version}\t{'enabled' if enabled else 'disabled'}")
    return 0


async def _disable(args: argparse.Namespace) -> int:
    async with config_service() as service:
        if service is None:
            return 2
        current = await service.current(args.workspace, "campaign")
        campaign = effective(current, "campaign").get(args.name)
        if campaign is None:
            fail(f"workspace {args.workspace} has no campaign {args.name!r} (`retarget campaigns list`)")
            return 1
        if campaign.body.get("enabled", True) is False:
            print(f"campaign {args.name} is already disabled (version {campaign.version or 'default'})")
            return 0
        return await apply_all(
            service,
            args.workspace,
            "campaign",
            [(f"campaign {args.name}", args.name, campaign.body | {"enabled": False})],
        )


async def _delete(args: argparse.Namespace) -> int:
    from retarget.common.write_keys import UnknownWorkspace
    from retarget.config.service import ConfigNotFound

    async with config_service() as service:
        if service is None:
            return 2
        try:
            change = await service.delete(args.workspace, "campaign", args.name, author=author())
        except (ConfigNotFound, UnknownWorkspace) as exc:
            fail(f"workspace {args.workspace} has no campaign {args.name!r} ({type(exc).__name__})")
            return 1
    print(f"deleted campaign {args.name}: version {change.version}")
    return 0
