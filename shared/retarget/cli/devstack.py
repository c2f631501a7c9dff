"""`retarget devstack up [--brokers 3] | down | status [--json] | fetch-kafka`: the local stack.

Thin: parse, call retarget.devstack.stack, print. Errors the user can act on
(DevstackError) print as a message with the next step, not as a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "devstack",
        help="the local stack: Kafka, PostgreSQL, SMTP capture on 127.0.0.1",
        description="Run Kafka, PostgreSQL and an SMTP capture locally; data lives in .devstack/ "
        "(or RETARGET_DEVSTACK_DIR). Set RETARGET_KAFKA_BOOTSTRAP, RETARGET_DATABASE_URL or "
        "RETARGET_SMTP_URL to use an existing server instead of starting one.",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="start what is not running yet (idempotent)")
    up.add_argument(
        "--brokers",
        type=int,
        choices=(1, 3),
        default=None,
        help="Kafka nodes: 1 (default) or 3 (a cluster; topics get 3 replicas, min.insync.replicas 2); "
        "without it, the shape that runs is kept",
    )
    up.set_defaults(func=_up)
    actions.add_parser(
        "down", help="stop services, SMTP capture, Kafka, PostgreSQL (data is kept)"
    ).set_defaults(func=_down)
    status = actions.add_parser("status", help="what runs where")
    status.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    status.set_defaults(func=_status)
    fetch = actions.add_parser("fetch-kafka", help="download the Kafka jars with Maven (only when missing)")
    fetch.add_argument("--force", action="store_true", help="fetch again even if the cache looks complete")
    fetch.set_defaults(func=_fetch)


def _fail(exc: Exception) -> int:
    from rich.markup import escape

    from retarget.devstack.progress import console

    # Escaped: the message often quotes log lines, whose [brackets] are not markup.
    console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return 1


async def _up(args: argparse.Namespace) -> int:
    from retarget.devstack import stack
    from retarget.devstack.errors import DevstackError
    from retarget.devstack.report import render

    try:
        render(await stack.up(brokers=args.brokers))
    except DevstackError as exc:
        return _fail(exc)
    return 0


def _down(args: argparse.Namespace) -> int:
    from retarget.devstack import stack
    from retarget.devstack.errors import DevstackError

    try:
        stack.down()
    except DevstackError as exc:
        return _fail(exc)
    return 0


def _status(args: argparse.Namespace) -> int:
    from retarget.devstack import stack
    from retarget.devstack.errors import DevstackError
    from retarget.devstack.report import render

    try:
        status = stack.status()
    except DevstackError as exc:
        return _fail(exc)
    if args.json:
        json.dump(status, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        render(status)
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from retarget.devstack.errors import DevstackError
    from retarget.devstack.kafka_jars import fetch_kafka

    try:
        libs = fetch_kafka(force=args.force)
    except DevstackError as exc:
        return _fail(exc)
    print(libs)
    return 0
