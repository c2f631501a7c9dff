"""`retarget funnel [--workspace W] [--json]`: the per-campaign funnel table.

Reads the counters from Prometheus when it runs (`--prometheus URL`, or the local stack's),
else straight from the services' /metrics (`--metrics URL …`, or the local stack's services).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import httpx

from retarget.common.funnel import METRIC_NAMES, STAGES, Sample, funnel, revenue_text


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("funnel", help="per-campaign funnel: triggered → sent → opened → converted")
    parser.add_argument("--workspace", help="only this workspace")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--prometheus", help="Prometheus base URL (default: the local stack's, if running)")
    parser.add_argument("--metrics", nargs="*", default=None, help="service /metrics URLs to read instead")
    parser.set_defaults(func=_run)


def from_prometheus(base_url: str) -> list[Sample]:
    query = '{__name__=~"' + "|".join(METRIC_NAMES) + '"}'
    response = httpx.get(f"{base_url.rstrip('/')}/api/v1/query", params={"query": query}, timeout=10)
    response.raise_for_status()
    return [
        (r["metric"]["__name__"], r["metric"], float(r["value"][1]))
        for r in response.json()["data"]["result"]
    ]


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
    if prometheus:
        return f"Prometheus at {prometheus}", from_prometheus(prometheus)
    if urls:
        return f"{len(urls)} services' /metrics", from_metrics(urls)
    raise SystemExit(
        "no metrics to read: start the services (`make demo`), or pass --prometheus URL or --metrics URL…"
    )


def _run(args: argparse.Namespace) -> int:
    try:
        source, samples = collect(args)
    except httpx.HTTPError as exc:
        print(f"cannot read the metrics ({exc}): are the services running? `retarget devstack status`")
        return 2
    rows = {k: v for k, v in funnel(samples).items() if not args.workspace or k[0] == args.workspace}
    if args.json:
        out: list[dict[str, Any]] = [{"workspace": w, "campaign": c, **row} for (w, c), row in rows.items()]
        print(json.dumps(out, indent=2))
        return 0
    print_table(rows, source)
    return 0


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
    # eleven number columns: never squeeze them into "…" (a log or a narrow terminal wraps instead)
    Console(width=max(console.width, 180)).print(table)
