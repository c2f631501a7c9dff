"""`retarget <command> …`: a thin dispatcher.

Each sub-command lives in its own module under retarget.cli and exposes
`register(subparsers)`; the module adds its parser and sets `func` (sync or async).
Imports stay lazy inside the modules, so `retarget --help` is instant.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import sys

# module name -> why it exists (shown in --help ordering)
COMMAND_MODULES = [
    "retarget.cli.devstack",  # the local stack: Kafka, PostgreSQL, SMTP capture
    "retarget.cli.db",  # migrations
    "retarget.cli.kafka",  # topics
    "retarget.cli.workspaces",  # tenants
    "retarget.cli.write_keys",  # ingest write keys (public: events only)
    "retarget.cli.secret_keys",  # secret server keys with scopes (privacy, admin)
    "retarget.cli.campaigns",  # a workspace's campaigns (configuration as data, issue #14)
    "retarget.cli.templates",  # a workspace's email templates
    "retarget.cli.dkim",  # DKIM keys: generate (rotate), list
    "retarget.cli.preview",  # render a campaign for a sample profile
    "retarget.cli.suppressions",  # suppression list import/export
    "retarget.cli.coupons",  # coupon codes: check, redeem, upload a pool
    "retarget.cli.funnel",  # the per-campaign funnel
    "retarget.cli.privacy",  # GDPR erasure and export
    "retarget.cli.model",  # the conversion-propensity model: train, evaluate
    "retarget.cli.demo",  # the main job on the local stack
    "retarget.cli.docs",  # docs/configuration.md and docs/metrics.md from the code
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retarget", description="retarget: email retargeting on Kafka.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a command not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from retarget.devstack.errors import DevstackError

    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
    except DevstackError as exc:  # a problem with a next step: print it, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
