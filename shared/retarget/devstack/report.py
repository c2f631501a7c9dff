"""Human rendering of `retarget devstack status` (the JSON form is stack.status() as is).

A narrow table (fits 80 columns, what rich assumes when output is not a terminal) with
the long file paths listed underneath, where they can be copied without wrapping.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _state(info: dict[str, Any]) -> str:
    state = "[green]running[/]" if info.get("running") else "[red]stopped[/]"
    return state if info.get("managed", True) else f"{state} (external)"


def render(status: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    table = Table(
        title=f"retarget devstack — {escape(status['devstack_dir'])}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for column in ("component", "state", "address", "pid"):
        table.add_column(column, overflow="fold")
    kafka, pg, smtp = status["kafka"], status["postgres"], status["smtp"]
    files: list[tuple[str, str | None]] = [
        ("kafka log", kafka.get("log")),
        ("postgres log", pg.get("log")),
        ("captured mail", smtp.get("capture_dir")),
    ]
    table.add_row("kafka", _state(kafka), kafka["bootstrap"], str(kafka["pid"] or ""))
    for node in kafka.get("nodes") or []:  # a cluster (`up --brokers 3`): each node on its own
        table.add_row(f"  node {node['node_id']}", _state(node), node["address"], str(node["pid"] or ""))
        files.append((f"kafka node {node['node_id']} log", node["log"]))
    table.add_row("postgres", _state(pg), pg["url"], str(pg["pid"] or ""))
    table.add_row("smtp", _state(smtp), smtp["url"], str(smtp["pid"] or ""))
    prom = status.get("prometheus") or {}
    if prom.get("running"):
        table.add_row("prometheus", _state(prom), prom["url"], str(prom["pid"] or ""))
    for name, svc in sorted(status["services"].items()):
        address = svc.get("http") or ""
        if svc.get("metrics"):
            address += f"\nmetrics {svc['metrics']}"
        table.add_row(f"service {name}", _state(svc), address, str(svc.get("pid") or ""))
        files.append((f"{name} log", svc.get("log")))
    console.print(table)
    for label, path in files:
        if path:
            console.print(f"  {label}: {escape(path)}", soft_wrap=True, highlight=False)
    if status["demo"]:
        demo = ", ".join(f"{key}={value}" for key, value in sorted(status["demo"].items()))
        console.print(f"  demo: {escape(demo)}", soft_wrap=True, highlight=False)
