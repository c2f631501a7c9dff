"""`retarget dkim generate|list`: a workspace's DKIM keys, kept as configuration (kind `dkim`).

`generate` makes new keys (Ed25519 and RSA-2048 by default), stores them sealed through the
ConfigService (PostgreSQL version + change feed: the sender signs with them from the next
message on) and prints the DNS TXT records to publish, one a line on stdout (explanations go
to stderr, so `retarget dkim generate … > records.txt` keeps only the records). A workspace
that had keys gets them marked retiring: both sign until retire_at, then only the new ones.
The private keys are never printed. Needs the configuration seal key
(RETARGET_CONFIG_SEAL_KEY_FILE; the local stack names its own).
"""

from __future__ import annotations

import argparse
import json
import sys

from retarget.cli._config import config_service


def register(sub: argparse._SubParsersAction) -> None:
    dkim = sub.add_parser("dkim", help="a workspace's DKIM keys: generate (rotate) and list")
    dkim_sub = dkim.add_subparsers(dest="dkim_command", required=True)

    generate = dkim_sub.add_parser(
        "generate", help="new keys (rotates existing ones); prints the DNS records"
    )
    generate.add_argument("--workspace", required=True, help="workspace id")
    generate.add_argument("--algorithm", choices=["ed25519", "rsa", "both"], default="both")
    generate.add_argument("--selector", default=None, help="default: dated, e.g. rt20261129150000-ed")
    generate.add_argument("--domain", default=None, help="signing domain; default: the From address's domain")
    generate.set_defaults(func=_generate)

    listing = dkim_sub.add_parser("list", help="the workspace's selectors, their state and DNS records")
    listing.add_argument("--workspace", required=True, help="workspace id")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=_list)


async def _generate(args: argparse.Namespace) -> int:
    import getpass
    from datetime import UTC, datetime

    from retarget.common.workspaces import WorkspaceStore
    from retarget.common.write_keys import UnknownWorkspace
    from retarget.config.dkim_admin import generate_keys, signing_domain
    from retarget.config.dkim_settings import DkimSettings
    from retarget.config.seal import SealKeyMissing, load_seal_key

    settings = DkimSettings()
    try:
        seal_key = load_seal_key(settings)
    except SealKeyMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    algorithms = ["ed25519", "rsa"] if args.algorithm == "both" else [args.algorithm]
    async with config_service() as opened:
        if opened is None:
            return 2
        service = opened
        workspace = await WorkspaceStore(service.pool).get(
            args.workspace
        )  # its From address, before any identity
        if workspace is None:
            print(
                f"no workspace {args.workspace!r}: create it first with `retarget workspace create`",
                file=sys.stderr,
            )
            return 1
        domain = args.domain or await signing_domain(service, args.workspace, workspace.from_email)
        if not domain:
            print("error: the workspace has no From address to sign for; give --domain", file=sys.stderr)
            return 1
        try:
            generated = await generate_keys(
                service,
                args.workspace,
                domain=domain.lower(),
                algorithms=algorithms,  # type: ignore[arg-type]
                seal_key=seal_key,
                grace=settings.rotation_grace,
                now=datetime.now(UTC),
                author=f"cli:{getpass.getuser()}",
                selector=args.selector,
            )
        except UnknownWorkspace:
            print(f"no workspace {args.workspace!r}", file=sys.stderr)
            return 1
        except ValueError as exc:  # ConfigInvalid or a selector already used: names the field
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(
        f"publish these DNS TXT records for {domain} (the sender signs with them from now on):",
        file=sys.stderr,
    )
    for key in generated.new:
        print(key.dns)
    for key in generated.retiring:
        print(
            f"selector {key.selector} retires at {key.retire_at}: it signs too until then; "
            "remove its DNS record after that",
            file=sys.stderr,
        )
    return 0


async def _list(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from retarget.config.dkim_admin import list_keys

    async with config_service() as opened:
        if opened is None:
            return 2
        keys = await list_keys(opened, args.workspace)
    for key in keys:
        if args.json:
            print(json.dumps(asdict(key)))
        else:
            until = f" until {key.retire_at}" if key.retire_at else ""
            print(f"{key.selector}\t{key.algorithm}\t{key.domain}\t{key.state}{until}\n  {key.dns}")
    if not keys:
        print(
            f"workspace {args.workspace} has no DKIM keys: `retarget dkim generate --workspace {args.workspace}`",
            file=sys.stderr,
        )
    return 0
