"""`retarget workspace create|list|set-origins`: tenants and their sender identity
(`pause|resume|reputation`: cli/reputation.py).

`create` is an idempotent upsert: it makes the workspace exactly what the command says
(options left out take their defaults), so it is safe in provisioning scripts.
`set-origins` replaces the browser origins of a live workspace through the config service
(a new identity version; ingest follows within its cache TTL, RETARGET_ORIGINS_CACHE_S).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from retarget.cli._db import connection as _connection


def register(sub: argparse._SubParsersAction) -> None:
    workspace = sub.add_parser("workspace", help="workspaces (tenants)")
    ws_sub = workspace.add_subparsers(dest="workspace_command", required=True)

    create = ws_sub.add_parser("create", help="create or update a workspace (idempotent)")
    create.add_argument("--id", required=True, help="workspace id, e.g. acme")
    create.add_argument("--name", required=True)
    create.add_argument("--from-email", required=True, help="sender address of its emails")
    create.add_argument("--from-name", required=True, help="sender display name")
    create.add_argument("--postal-address", required=True, help="physical postal address (CAN-SPAM)")
    create.add_argument("--reply-to", default=None)
    create.add_argument("--timezone", default="UTC", help="IANA zone for quiet hours (default UTC)")
    create.add_argument("--consent-mode", choices=["opt_in", "opt_out"], default="opt_out")
    create.add_argument("--dkim-selector", default=None)
    create.add_argument(
        "--link-domain",
        dest="link_domains",
        action="append",
        metavar="DOMAIN",
        help="a domain its emails may link to, subdomains included (repeat for more); "
        "default: the domain of --from-email",
    )
    create.add_argument(
        "--allowed-origin",
        dest="allowed_origins",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a web origin whose pages may send its events from a browser (CORS), e.g. "
        "https://shop.example or https://*.shop.example (repeat for more; default: none)",
    )
    create.set_defaults(func=_create)

    origins = ws_sub.add_parser(
        "set-origins", help="replace the browser origins allowed to send a workspace's events (CORS)"
    )
    origins.add_argument("--id", required=True, help="workspace id")
    origins.add_argument("origins", nargs="*", metavar="ORIGIN", help="none: no browser origin")
    origins.set_defaults(func=_set_origins)

    listing = ws_sub.add_parser("list", help="list workspaces")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=_list)

    from retarget.cli.reputation import register_workspace_commands

    register_workspace_commands(ws_sub)  # pause, resume, reputation


async def _create(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from retarget.common.link_domains import normalise_domain
    from retarget.common.origins import normalise_origins
    from retarget.common.workspaces import Workspace, WorkspaceStore
    from retarget.config.schemas import MAX_ORIGINS

    try:
        ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        print(f"unknown timezone {args.timezone!r} (use an IANA name such as Europe/Paris)")
        return 2
    try:
        link_domains = (
            tuple(dict.fromkeys(normalise_domain(d) for d in args.link_domains))
            if args.link_domains
            else None
        )
    except ValueError as exc:
        print(f"--link-domain {exc}")
        return 2
    try:
        allowed_origins = tuple(normalise_origins(args.allowed_origins))
    except ValueError as exc:
        print(f"--allowed-origin {exc}")
        return 2
    if len(allowed_origins) > MAX_ORIGINS:  # the identity's bound (API, set-origins) holds here too
        print(f"--allowed-origin: at most {MAX_ORIGINS} origins, not {len(allowed_origins)}")
        return 2
    workspace = Workspace(
        id=args.id,
        name=args.name,
        from_name=args.from_name,
        from_email=args.from_email,
        postal_address=args.postal_address,
        reply_to=args.reply_to,
        timezone=args.timezone,
        consent_mode=args.consent_mode,
        dkim_selector=args.dkim_selector,
        link_domains=link_domains,
        allowed_origins=allowed_origins,
    )
    async with _connection() as conn:
        if conn is None:
            return 2
        created = await WorkspaceStore(conn).upsert(workspace)
    print(f"{'created' if created else 'updated'} workspace {workspace.id}")
    return 0


async def _list(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from retarget.common.link_domains import allowed_link_domains
    from retarget.common.workspaces import WorkspaceStore

    async with _connection() as conn:
        if conn is None:
            return 2
        workspaces = await WorkspaceStore(conn).list()
    for ws in workspaces:
        if args.json:
            print(json.dumps(asdict(ws) | {"allowed_link_domains": allowed_link_domains(ws)}))
        else:
            print(
                f"{ws.id}\t{ws.name}\t{ws.from_name} <{ws.from_email}>\t{ws.timezone}\t{ws.consent_mode}"
                f"\t{','.join(allowed_link_domains(ws)) or '-'}\t{','.join(ws.allowed_origins) or '-'}"
            )
    return 0


async def _set_origins(args: argparse.Namespace) -> int:
    from retarget.cli._config import author, config_service, fail
    from retarget.config.validation import ConfigInvalid

    async with config_service() as service:
        if service is None:
            return 2
        identity = await _identity_now(service, args.id)
        if identity is None:
            fail(f"no workspace {args.id!r}: create it first with `retarget workspace create`")
            return 1
        try:
            change = await service.apply(
                args.id, "identity", "", identity | {"allowed_origins": args.origins}, author=author()
            )
        except ConfigInvalid as exc:
            fail(str(exc))
            return 1
    origins = ", ".join(change.body["allowed_origins"]) or "none"
    print(f"workspace {args.id}: allowed origins {origins} (identity version {change.version})")
    return 0


async def _identity_now(service: Any, workspace_id: str) -> dict[str, Any] | None:
    """The workspace's identity body: its newest in the config store, else the workspaces row's."""
    from retarget.common.workspaces import WorkspaceStore

    own = [c for c in await service.current(workspace_id, "identity") if c.name == "" and not c.deleted]
    if own:
        return dict(max(own, key=lambda c: c.version).body or {})
    ws = await WorkspaceStore(service.pool).get(workspace_id)
    if ws is None:
        return None
    return {
        "from_name": ws.from_name,
        "from_email": ws.from_email,
        "reply_to": ws.reply_to,
        "postal_address": ws.postal_address,
        "timezone": ws.timezone,
        "link_domains": list(ws.link_domains) if ws.link_domains is not None else None,
    }
