"""`retarget workspace pause|resume|reputation`: the reputation guard's operator commands.

A paused workspace's marketing mail is held by the sender (docs/deliverability.md, "Reputation
guard"); `resume` lets it go (each held message once: the send log guards) and judges the
workspace again only on what is counted after the resume.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

from retarget.cli._db import connection as _connection


def register_workspace_commands(ws_sub: argparse._SubParsersAction) -> None:
    pause = ws_sub.add_parser("pause", help="hold a workspace's marketing mail until it is resumed")
    pause.add_argument("workspace_id")
    pause.add_argument("--reason", required=True, help="why (shown by `reputation`, kept with the pause)")
    pause.set_defaults(func=_pause)

    resume = ws_sub.add_parser("resume", help="send a paused workspace's held mail and its new mail again")
    resume.add_argument("workspace_id")
    resume.add_argument("--note", default="", help="what was fixed (kept with the workspace's pause row)")
    resume.set_defaults(func=_resume)

    show = ws_sub.add_parser(
        "reputation", help="a workspace's complaint and hard-bounce rates, and its pause"
    )
    show.add_argument("workspace_id")
    show.add_argument("--json", action="store_true", help="one JSON object")
    show.set_defaults(func=_show)


async def _pause(args: argparse.Namespace) -> int:
    from retarget.common.reputation_store import pause

    async with _connection() as conn:
        if conn is None:
            return 2
        if not await conn.fetchval("SELECT true FROM workspaces WHERE id = $1", args.workspace_id):
            print(f"no workspace {args.workspace_id!r}")
            return 1
        done = await pause(conn, args.workspace_id, "operator", args.reason, datetime.now(UTC))
    print(f"workspace {args.workspace_id} {'paused' if done else 'was paused already'}")
    return 0


async def _resume(args: argparse.Namespace) -> int:
    from retarget.common.reputation_store import resume

    async with _connection() as conn:
        if conn is None:
            return 2
        done = await resume(conn, args.workspace_id, datetime.now(UTC), args.note)
    if not done:
        print(f"workspace {args.workspace_id} is not paused")
        return 1
    print(f"workspace {args.workspace_id} resumed: its held mail goes out now")
    return 0


async def _show(args: argparse.Namespace) -> int:
    from retarget.common.reputation import ALL_DOMAINS
    from retarget.common.reputation_settings import ReputationSettings
    from retarget.common.reputation_store import report

    settings = ReputationSettings()
    async with _connection() as conn:
        if conn is None:
            return 2
        shown = await report(
            conn,
            args.workspace_id,
            settings.thresholds(),
            timedelta(hours=settings.window_h),
            datetime.now(UTC),
        )
    if args.json:
        print(json.dumps(shown))
        return 0
    state = (
        f"PAUSED since {shown['since']} ({shown['reason']}: {shown['detail']})"
        if shown["paused"]
        else "sending"
    )
    print(f"workspace {args.workspace_id}: {state}; {shown['held']} messages held")
    print(
        f"window from {shown['window_start']}, judged from {shown['min_sent']} sent; level {shown['level']}"
    )
    for r in shown["rates"]:
        scope = "all domains" if r["domain"] == ALL_DOMAINS else r["domain"]
        print(
            f"  {scope:<24} {r['kind']:<17} {r['rate']:>8.3%}  {r['events']}/{r['sent']}"
            f"  (pause at {r['pause_at']:.1%})  {r['level']}"
        )
    return 0
