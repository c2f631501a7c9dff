"""Several processes of a service in the demo (`--replicas 2` or `--replicas sender=2,segmenter=2`),
so a person can watch Kafka move partitions between them when one stops.

Pure: parsing the counts and planning each replica's name and ports. The first process of a
service keeps its usual name and ports; replica i (2, 3, …) is `<service>-<i>` with every port
moved up by 100 × (i - 1): the sender's second process answers on 18183, its third on 18283.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retarget.demo.services import ServicePlan

REPLICABLE = ("ingest", "segmenter", "composer", "sender")
MAX_REPLICAS = 9  # ports move by 100 each: 9 keeps them below the next service's range
PORT_STEP = 100


def parse_replicas(spec: str) -> dict[str, int]:
    """'3' → 3 of each replicable service; 'sender=2,segmenter=2' → those, 1 of the others."""
    spec = spec.strip()
    if spec.isdigit():
        return {name: _count(name, spec) for name in REPLICABLE}
    counts = dict.fromkeys(REPLICABLE, 1)
    named: set[str] = set()
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, value = part.partition("=")
        if not sep or name.strip() not in REPLICABLE:
            raise argparse.ArgumentTypeError(
                f"replicas {part!r}: give N, or SERVICE=N pairs separated by commas, "
                f"SERVICE one of {', '.join(REPLICABLE)} (e.g. sender=2,segmenter=2)"
            )
        if name.strip() in named:  # 'sender=2,sender=3': which one was meant? say, don't guess
            raise argparse.ArgumentTypeError(f"replicas: {name.strip()} is given twice in {spec!r}")
        named.add(name.strip())
        counts[name.strip()] = _count(name.strip(), value.strip())
    return counts


def _count(name: str, value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_REPLICAS:
        raise argparse.ArgumentTypeError(
            f"replicas of {name}: {value!r} is not a count from 1 to {MAX_REPLICAS}"
        )
    return int(value)


def replica_plans(plan: ServicePlan, count: int) -> list[ServicePlan]:
    """The plans of a service's `count` processes: itself, then `<name>-2`… on moved ports."""
    return [plan] + [_moved(plan, i, PORT_STEP * (i - 1)) for i in range(2, count + 1)]


def _moved(plan: ServicePlan, index: int, offset: int) -> ServicePlan:
    return dataclasses.replace(
        plan,
        name=f"{plan.name}-{index}",
        module=plan.module or plan.name,  # the same program under another name
        port=plan.port + offset,
        metrics_port=plan.metrics_port + offset if plan.metrics_port else 0,
    )


def is_replica_of(name: str, service: str) -> bool:
    """`sender-2` is a replica of `sender` (and `sender` itself is its first process)."""
    head, _, index = name.rpartition("-")
    return name == service or (head == service and index.isdigit())
