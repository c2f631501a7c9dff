"""`retarget write-key create|revoke|list`: the credentials platforms send to ingest.

A key is printed once, when created; only its hash is stored. Listings show the first
characters, which `revoke` also accepts. Ingest caches keys briefly
(RETARGET_KEY_CACHE_TTL_S), so a revocation takes effect within that time.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from retarget.cli._db import connection


def register(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("write-key", help="ingest write keys")
    keys_sub = keys.add_subparsers(dest="write_key_command", required=True)

    create = keys_sub.add_parser("create", help="create a key and print it (shown only this once)")
    create.add_argument("--workspace", required=True, help="workspace id")
    create.set_defaults(func=_create)

    revoke = keys_sub.add_parser("revoke", help="revoke a key, given whole or by its listed prefix")
    revoke.add_argument("key_or_prefix")
    revoke.set_defaults(func=_revoke)

    listing = keys_sub.add_parser("list", help="list a workspace's keys (prefixes only)")
    listing.add_argument("--workspace", required=True, help="workspace id")
    listing.set_defaults(func=_list)


async def _create(args: argparse.Namespace) -> int:
    from retarget.common.write_keys import UnknownWorkspace, WriteKeyStore

    async with connection() as conn:
        if conn is None:
            return 2
        try:
            key = await WriteKeyStore(conn).create(args.workspace)
        except UnknownWorkspace:
            print(f"no workspace {args.workspace!r}: create it first with `retarget workspace create`")
            return 1
    print(key)
    return 0


async def _revoke(args: argparse.Namespace) -> int:
    from retarget.common.write_keys import WriteKeyStore

    return await revoke_key(WriteKeyStore, args.key_or_prefix, "write key")


async def revoke_key(store: Callable[[Any], Any], key_or_prefix: str, what: str) -> int:
    """`revoke` of a key store (write keys, secret keys): by the key or an unambiguous prefix."""
    from retarget.common.write_keys import AmbiguousKeyPrefix

    async with connection() as conn:
        if conn is None:
            return 2
        try:
            revoked = await store(conn).revoke(key_or_prefix)
        except AmbiguousKeyPrefix as exc:
            print(exc)
            return 1
    if revoked is None:
        print(f"no such {what}")
        return 1
    print(
        f"revoked {revoked.prefix}… of workspace {revoked.workspace_id} at {revoked.revoked_at:%Y-%m-%d %H:%M:%S%z}"
    )
    return 0


async def _list(args: argparse.Namespace) -> int:
    from retarget.common.write_keys import WriteKeyStore

    async with connection() as conn:
        if conn is None:
            return 2
        keys = await WriteKeyStore(conn).list(args.workspace)
    for key in keys:
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        print(f"{key.prefix}…\t{key.workspace_id}\tcreated {key.created_at:%Y-%m-%d %H:%M}\t{state}")
    return 0
