"""`retarget db migrate`: apply the versioned SQL migrations."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="PostgreSQL schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    migrate = db_sub.add_parser("migrate", help="apply pending migrations")
    migrate.set_defaults(func=_migrate)


async def _migrate(args: argparse.Namespace) -> int:
    from retarget.common.db import migrate
    from retarget.common.settings import CommonSettings

    settings = CommonSettings()
    try:
        applied = await migrate(settings.database_url)
    except OSError as exc:
        print(
            f"cannot reach PostgreSQL at RETARGET_DATABASE_URL ({exc}): "
            "start the local stack with `retarget devstack up`, or point RETARGET_DATABASE_URL at a server"
        )
        return 2
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    return 0
