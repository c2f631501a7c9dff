"""`retarget privacy erase|export --workspace W (--email E | --user-id U)`: GDPR requests.

Erase keeps only a hashed suppression entry and a record of the request; export prints
everything held about the person as JSON. The same operations are served by ingest at
POST /v1/privacy/erase and /v1/privacy/export (write-key auth).
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    privacy = sub.add_parser("privacy", help="GDPR erasure and export of one person")
    privacy_sub = privacy.add_subparsers(dest="privacy_command", required=True)
    for name, help_text in (("erase", "erase a person"), ("export", "print what is held about a person")):
        parser = privacy_sub.add_parser(name, help=help_text)
        parser.add_argument("--workspace", required=True)
        parser.add_argument("--email")
        parser.add_argument("--user-id")
        parser.set_defaults(func=_run)


async def _run(args: argparse.Namespace) -> int:
    from retarget.cli._db import connection
    from retarget.common.privacy import Person, erase, export

    try:
        person = Person(args.workspace, email=args.email, user_id=args.user_id)
    except ValueError as exc:
        print(f"error: {exc} (--email or --user-id)")
        return 2
    async with connection() as conn:
        if conn is None:
            return 2
        if args.privacy_command == "export":
            print(json.dumps(await export(conn, person), indent=2))
            return 0
        report = await erase(conn, person, source="cli")
    print(
        f"erased: {report.suppressed} address(es) suppressed as 'erased', {report.send_log_rows} send-log "
        f"row(s) scrubbed, {report.retries_deleted} queued retr(y/ies) deleted"
    )
    return 0
