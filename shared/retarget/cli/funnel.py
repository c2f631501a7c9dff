"""`retarget funnel [--workspace W] [--range 24h] [--json]`: the per-campaign funnel table.

Reads the counters' growth over the range from Prometheus when it runs (`--prometheus URL`,
or the local stack's; funnel_prometheus.py), so a restarted service does not zero its row;
else the services' own counters (`--metrics URL …`, or the local stack's services), which
are totals since each service started, and says so.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import httpx

from retarget.cli.funnel_experiments import NO_EXPERIMENT, print_experiments
from retarget.cli.funnel_prometheus import checked_range, from_prometheus_range
from retarget.common.experiment_funnel import arms, experiment_fields
from retarget.common.funnel import STAGES, Row, Sample, funnel, revenue_text

DEFAULT_RANGE = "24h"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("funnel", help="per-campaign funnel: triggered → sent → opened → converted")
    parser.add_argument("--workspace", help="only this workspace")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--range",
        type=_duration,
        default=DEFAULT_RANGE,
        help=f"Prometheus duration the funnel covers, up to now (default {DEFAULT_RANGE}; 15m, 7d, …)",
    )
    parser.add_argument("--prometheus", help="Prometheus base URL (default: the local stack's, if running)")
    parser.add_argument("--metrics", nargs="*", default=None, help="service /metrics URLs to read instead")
    parser.set_defaults(func=_run)


def _duration(text: str) -> str:
    try:
        return checked_range(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def from_metrics(urls: list[str]) -> list[Sample]:
    from prometheus_client.parser import text_string_to_metric_families

    samples: list[Sample] = []
    for url in urls:
        text = httpx.get(url, timeout=10).text
        for family in text_string_to_metric_families(text):
            samples += [(s.name, dict(s.labels), float(s.value)) for s in family.samples]
    return samples


def _local_sources() -> tuple[str | None, list[str]]:
    try:
        from retarget.devstack.stack import status
    except ImportError:  # a wheel install without the devstack
        return None, []
    current = status()
    prom = current.get("prometheus") or {}
    urls = [s["metrics"] for s in current["services"].values() if s.get("running") and s.get("metrics")]
    return (prom.get("url") if prom.get("running") else None), urls


def collect(args: argparse.Namespace) -> tuple[str, list[Sample]]:
    prometheus, urls = args.prometheus, args.metrics
    if not prometheus and not urls:
        prometheus, urls = _local_sources()
    window = getattr(args, "range", None) or DEFAULT_RANGE  # the demo passes no range
    if prometheus:
        return f"Prometheus at {prometheus}, last {window}", from_prometheus_range(prometheus, window)
    if urls:
        # no history without Prometheus: each counter is a total since its service started
        return f"{len(urls)} services' /metrics: totals since each started, no Prometheus", from_metrics(urls)
    raise SystemExit(
        "no metrics to read: start the services (`make demo`), or pass --prometheus URL or --metrics URL…"
    )


def _run(args: argparse.Namespace) -> int:
    try:
        source, samples = collect(args)
    except httpx.HTTPStatusError as exc:  # Prometheus answered, and refused the query
        print(f"Prometheus refused the query ({_prometheus_error(exc.response)})")
        return 2
    except httpx.HTTPError as exc:
        print(f"cannot read the metrics ({exc}): are the services running? `retarget devstack status`")
        return 2
    rows = {k: rounded(v) for k, v in funnel(samples).items() if not args.workspace or k[0] == args.workspace}
    experiments = {
        k: experiment_fields(v)
        for k, v in arms(samples).items()
        if not args.workspace or k[0] == args.workspace
    }
    for key in experiments.keys() - rows.keys():  # a campaign whose every firing was held out so far
        rows[key] = dict.fromkeys(STAGES, 0.0)
    rows = dict(sorted(rows.items()))
    if args.json:
        out: list[dict[str, Any]] = [
            {"workspace": w, "campaign": c, **row, **experiments.get((w, c), NO_EXPERIMENT)}
            for (w, c), row in rows.items()
        ]
        print(json.dumps(out, indent=2))
        return 0
    print_table(rows, source)
    print_experiments({k: v for k, v in experiments.items() if k in rows})
    return 0


def _prometheus_error(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code} from {response.request.url}"


def rounded(row: Row) -> Row:
    """Whole counts and revenue in cents (sums of floats carry noise in the last digits)."""
    return {k: round(v, 2) if k.startswith("revenue") else float(round(v)) for k, v in row.items()}


def print_table(rows: dict[tuple[str, str], dict[str, float]], source: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"funnel (from {source})", title_justify="left")
    table.add_column("workspace")
    table.add_column("campaign")
    for stage in STAGES:
        table.add_column(stage, justify="right")
    for (workspace, campaign), row in rows.items():
        cells = [revenue_text(row) if s == "revenue" else f"{row[s]:,.0f}" for s in STAGES]
        table.add_row(workspace, campaign, *cells)
    console = Console()
    # fifteen number columns: never squeeze them into "…" (a log or a narrow terminal wraps instead)
    Console(width=max(console.width, 230)).print(table)
