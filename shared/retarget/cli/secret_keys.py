"""`retarget secret-key create|revoke|list`: a workspace's server-side credentials.

A secret key (`rt_sk_…`) is what ingest's privacy endpoints require (scope `privacy`);
`admin` is for workspace management. The key goes to stdout once, when created (so
`KEY=$(retarget secret-key create …)` works), and the reminder that it is secret to
stderr; only its hash is stored. Listings show the first characters, which `revoke` also
accepts. Ingest caches keys briefly (RETARGET_KEY_CACHE_TTL_S), so a revocation takes
effect within that time.
"""

from __future__ import annotations

import argparse
import sys

from retarget.cli._db import connection
from retarget.cli.write_keys import revoke_key
from retarget.common.secret_keys import SCOPES  # a light module: --help stays instant


def register(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("secret-key", help="secret server keys with scopes (privacy, admin)")
    keys_sub = keys.add_subparsers(dest="secret_key_command", required=True)

    create = keys_sub.add_parser("create", help="create a key and print it (shown only this once)")
    create.add_argument("--workspace", required=True, help="workspace id")
    create.add_argument(
        "--scope", action="append", required=True, choices=SCOPES, help="repeat for several scopes"
    )
    create.add_argument("--label", default="", help="what the key is for, shown in listings")
    create.set_defaults(func=_create)

    revoke = keys_sub.add_parser("revoke", help="revoke a key, given whole or by its listed prefix")
    revoke.add_argument("key_or_prefix")
    revoke.set_defaults(func=_revoke)

    listing = keys_sub.add_parser("list", help="list a workspace's keys (prefixes only, never the keys)")
    listing.add_argument("--workspace", required=True, help="workspace id")
    listing.set_defaults(func=_list)


async def _create(args: argparse.Namespace) -> int:
    from retarget.common.secret_keys import SecretKeyStore
    from retarget.common.write_keys import UnknownWorkspace

    async with connection() as conn:
        if conn is None:
            return 2
        try:
            key = await SecretKeyStore(conn).create(args.workspace, args.scope, args.label)
        except UnknownWorkspace:
            print(f"no workspace {args.workspace!r}: create it first with `retarget workspace create`")
            return 1
    print(key)
    print(
        f"this is a SECRET key (scopes: {', '.join(sorted(set(args.scope)))}; workspace {args.workspace}): "
        "keep it on your servers, in a secrets manager or an environment variable, never in a page, "
        "an app or a repository. It is shown only this once; `retarget secret-key revoke` ends it.",
        file=sys.stderr,
    )
    return 0


async def _revoke(args: argparse.Namespace) -> int:
    from retarget.common.secret_keys import SecretKeyStore

    return await revoke_key(SecretKeyStore, args.key_or_prefix, "secret key")


async def _list(args: argparse.Namespace) -> int:
    from retarget.common.secret_keys import SecretKeyStore

    async with connection() as conn:
        if conn is None:
            return 2
        keys = await SecretKeyStore(conn).list(args.workspace)
    for key in keys:
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        print(
            f"{key.prefix}…\t{key.workspace_id}\t{','.join(key.scopes)}\tcreated {key.created_at:%Y-%m-%d %H:%M}"
            f"\t{state}\t{key.label}"
        )
    return 0
