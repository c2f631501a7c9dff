"""After a demo with replicas: which partitions each process owns now (its /readyz), and how to
watch them move when one of them stops."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from rich.console import Console

from retarget.demo.replicas import is_replica_of
from retarget.devstack.state import load_state

CONSUMERS = ("segmenter", "composer", "sender")  # ingest consumes nothing: it has no partitions
console = Console()


def owned_partitions(readyz_url: str) -> dict[str, list[int]] | None:
    """The `partitions` of a process's /readyz, or None when it does not answer."""
    try:
        return dict(httpx.get(readyz_url, timeout=3).json().get("partitions") or {})
    except (httpx.HTTPError, ValueError):
        return None


def show_partitions_howto(replicas: Mapping[str, int] | None) -> None:
    if not replicas or all(count == 1 for count in replicas.values()):
        return
    services = load_state().get("services", {})
    console.print("  Replicas and the partitions each owns now (GET /readyz → partitions):")
    for name in sorted(services):
        if not any(is_replica_of(name, service) for service in CONSUMERS):
            continue
        readyz = f"{services[name]['http']}/readyz"
        owned = owned_partitions(readyz)
        summary = "not answering" if owned is None else _summary(owned)
        console.print(f"    {name:<12} pid {services[name]['pid']:<8} {readyz}  {summary}", highlight=False)
    console.print(
        "  Watch them move: `watch -n1 curl -s <a /readyz above>` in one terminal, stop one replica "
        "in another (`kill <its pid>`); within a session timeout (~10–45 s) the others own its "
        "partitions. `retarget demo` again starts it back; `retarget devstack status --json` lists all.",
        soft_wrap=True,
        highlight=False,
    )


def _summary(owned: Mapping[str, list[int]]) -> str:
    # the input topic is the one worth watching; changelogs (segmenter) follow it
    inputs = {t: p for t, p in owned.items() if not t.endswith("-changelog")}
    return "; ".join(f"{topic} {partitions}" for topic, partitions in sorted(inputs.items())) or "none yet"
