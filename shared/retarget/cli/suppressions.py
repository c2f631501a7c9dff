"""`retarget suppressions add|import|export`: the workspace and global suppression lists.

The sender checks these lists at send time, for every message, so an entry added here stops
the next message to that address — even one already rendered and waiting in Kafka. Exports
hold address hashes only (addresses are never stored); `import` reads them back.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from retarget.cli._db import connection


def _scope(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--workspace", help="workspace id")
    scope.add_argument("--global", dest="global_", action="store_true", help="the list every workspace obeys")


def register(sub: argparse._SubParsersAction) -> None:
    from retarget.sender.suppression_list import REASONS  # small and pure: --help stays instant

    cmd = sub.add_parser("suppressions", help="suppression lists: add, import, export")
    cmd_sub = cmd.add_subparsers(dest="suppressions_command", required=True)

    add = cmd_sub.add_parser("add", help="suppress one address")
    add.add_argument("email")
    _scope(add)
    add.add_argument("--reason", choices=REASONS, default="manual")
    add.set_defaults(func=_add)

    imp = cmd_sub.add_parser("import", help="suppress every address (or email_hash) of a CSV file")
    imp.add_argument(
        "file", type=Path, help="CSV with an `email` or `email_hash` column, or one address per line"
    )
    _scope(imp)
    imp.add_argument("--reason", choices=REASONS, required=True)
    imp.set_defaults(func=_import)

    exp = cmd_sub.add_parser("export", help="write a list as CSV (email_hash, reason, source, created_at)")
    _scope(exp)
    exp.add_argument("--output", type=Path, default=None, help="file to write (default: standard output)")
    exp.set_defaults(func=_export)


def _scope_of(args: argparse.Namespace) -> str:
    from retarget.sender.suppression_list import GLOBAL

    return GLOBAL if args.global_ else str(args.workspace)


async def _add(args: argparse.Namespace) -> int:
    from retarget.sender.suppression_list import add_digests, digest_of

    digest = digest_of(args.email)
    if digest is None:
        print("not an email address (or a 64-hex-digit email_hash)")
        return 2
    async with connection() as conn:
        if conn is None:
            return 2
        added = await add_digests(conn, _scope_of(args), args.reason, "cli", [digest])
    print("added" if added else "already suppressed")
    return 0


async def _import(args: argparse.Namespace) -> int:
    from retarget.sender.suppression_list import import_csv

    if not args.file.is_file():
        print(f"no such file: {args.file}")
        return 2
    async with connection() as conn:
        if conn is None:
            return 2
        with args.file.open(newline="", encoding="utf-8-sig") as lines:
            result = await import_csv(conn, _scope_of(args), args.reason, f"import:{args.file.name}", lines)
    print(f"added {result.added}, already suppressed {result.already}")
    if result.invalid_lines:
        shown = ", ".join(map(str, result.invalid_lines[:20]))
        print(f"skipped {len(result.invalid_lines)} line(s) that are not addresses: {shown}")
        return 1
    return 0


async def _export(args: argparse.Namespace) -> int:
    from retarget.sender.suppression_list import export_csv

    async with connection() as conn:
        if conn is None:
            return 2
        if args.output is None:
            count = await export_csv(conn, _scope_of(args), sys.stdout)
        else:
            with args.output.open("w", newline="", encoding="utf-8") as out:
                count = await export_csv(conn, _scope_of(args), out)
    print(f"exported {count} entries", file=sys.stderr)
    return 0
