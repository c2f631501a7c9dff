"""`retarget model train|evaluate --workspace W`: the workspace's conversion-propensity model.

train reads the workspace's history from the events topic (RETARGET_KAFKA_BOOTSTRAP; as far
back as the topic's retention keeps), builds examples at `--cutoffs` cut-offs `--step` apart
ending a `--horizon` before `--until` (default: now), fits, and stores the model as the
workspace's next version in PostgreSQL; the segmenter picks it up within
RETARGET_PROPENSITY_REFRESH_S. evaluate judges the newest version (or `--version`) on the
slice after the time it was trained until: AUC against a recency-only baseline, log loss,
calibration; the result is also stored with the model. docs/experiments.md, "Propensity model".
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    model = sub.add_parser("model", help="conversion-propensity model: train, evaluate")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    train = model_sub.add_parser("train", help="train the workspace's model from its event history")
    train.add_argument("--workspace", required=True)
    train.add_argument("--until", type=_time, help="use no event after this ISO 8601 time (default: now)")
    train.add_argument(
        "--horizon",
        type=_duration,
        default="7d",
        help="a purchase this soon after a cut-off is a positive (7d)",
    )
    train.add_argument("--step", type=_duration, default="1d", help="time between cut-offs (1d)")
    train.add_argument("--cutoffs", type=int, default=14, help="how many cut-offs (14)")
    train.add_argument("--json", action="store_true")
    train.set_defaults(func=_train)
    evaluate = model_sub.add_parser("evaluate", help="judge a model on the time slice after its training")
    evaluate.add_argument("--workspace", required=True)
    evaluate.add_argument("--version", type=_version, help="default: the newest")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(func=_evaluate)


MAX_VERSION = 2**31 - 1  # propensity_models.version is an integer column
MAX_CUTOFFS = 1000  # each cut-off is a snapshot of every active profile


def _version(text: str) -> int:
    try:
        version = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a model version") from exc
    if not 1 <= version <= MAX_VERSION:  # asyncpg raised its int32 overflow as a traceback
        raise argparse.ArgumentTypeError(f"{text!r}: a model version is from 1 to {MAX_VERSION}")
    return version


def _time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _duration(text: str) -> Any:
    from retarget.config.campaign_schema import parse_duration

    try:
        duration = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    if not duration:
        raise argparse.ArgumentTypeError("must be longer than 0")
    return duration


async def _train(args: argparse.Namespace) -> int:
    from retarget.cli._db import connection
    from retarget.common.settings import CommonSettings
    from retarget.common.workspaces import WorkspaceStore
    from retarget.segmenter.propensity.history import read_history
    from retarget.segmenter.propensity.store import ModelStore
    from retarget.segmenter.propensity.training import NotEnoughData, train

    if not 1 <= args.cutoffs <= MAX_CUTOFFS:
        print(f"error: --cutoffs must be from 1 to {MAX_CUTOFFS} (cut-offs)", file=sys.stderr)
        return 2
    until = args.until or datetime.now(UTC)
    try:  # the earliest cut-off, computed by training after the long read of the topic
        until - args.horizon - (args.cutoffs - 1) * args.step
    except OverflowError:
        print(
            "error: the earliest cut-off would fall before year 1: fewer --cutoffs, a shorter --step, "
            "or a later --until",
            file=sys.stderr,
        )
        return 2
    async with connection() as conn:
        if conn is None:
            return 2
        if await WorkspaceStore(conn).get(args.workspace) is None:  # before the long read of the topic
            print(f"error: no workspace {args.workspace!r} (`retarget workspace list`)", file=sys.stderr)
            return 1
        events = await read_history(CommonSettings(), args.workspace)
        try:
            model, metrics = train(
                events, until=until, horizon=args.horizon, step=args.step, count=args.cutoffs
            )
        except NotEnoughData as exc:
            print(
                f"error: {exc} ({len(events)} events of {args.workspace!r} on the events topic)",
                file=sys.stderr,
            )
            return 1
        metrics["events"] = len(events)
        version = await ModelStore(conn).save(
            args.workspace, model, metrics, until=until, horizon=args.horizon
        )
    result = {"workspace": args.workspace, "version": version, "until": until.isoformat(), **metrics}
    print(json.dumps(result) if args.json else _lines(result))
    return 0


async def _evaluate(args: argparse.Namespace) -> int:
    from retarget.cli._db import connection
    from retarget.common.settings import CommonSettings
    from retarget.segmenter.propensity.history import read_history
    from retarget.segmenter.propensity.model import ModelError, loads
    from retarget.segmenter.propensity.store import ModelStore
    from retarget.segmenter.propensity.training import NotEnoughData, evaluate

    async with connection() as conn:
        if conn is None:
            return 2
        store = ModelStore(conn)
        stored = await (
            store.newest(args.workspace) if args.version is None else store.get(args.workspace, args.version)
        )
        if stored is None:
            print(f"error: no model for {args.workspace!r}: `retarget model train` first", file=sys.stderr)
            return 1
        try:
            model = loads(stored.body)
            events = await read_history(CommonSettings(), args.workspace)
            result = evaluate(model, events, cutoff=stored.trained_until, horizon=stored.horizon)
        except (ModelError, NotEnoughData) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        await store.record_evaluation(args.workspace, stored.version, result)
    result = {"workspace": args.workspace, "version": stored.version, **result}
    print(json.dumps(result) if args.json else _lines(result))
    return 0


def _lines(result: dict[str, Any]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in result.items())
