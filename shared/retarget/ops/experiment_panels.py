"""The funnel dashboard's experiment panels: conversion rate per arm, and the treated arms' lift
over the holdout with the same 95% interval `retarget funnel` prints (Newcombe's hybrid score
interval, retarget.common.lift), written out in PromQL over the dashboard's time range."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, stat

from retarget.common.lift import Z
from retarget.ops.panels import DATASOURCE, query

SCOPE = 'workspace=~"$workspace", campaign=~"$campaign"'
TREATED = 'arm!~"holdout|global_holdout|_other"'
CONTROL = 'arm="holdout"'
_Z2 = f"{Z * Z:.6f}"


def _total(counter: str, arms: str) -> str:
    return f"sum(increase(retarget_segmenter_experiment_{counter}_total{{{SCOPE}, {arms}}}[$__range]))"


def _rate(arms: str) -> str:
    return f"({_total('conversions', arms)} / {_total('assigned', arms)})"


def wilson(arms: str, sign: str) -> str:
    """One end of the Wilson score interval of the arms' conversion rate (`sign` - or +)."""
    n, p = _total("assigned", arms), _rate(arms)
    centre = f"(({p} + {_Z2} / (2 * {n})) / (1 + {_Z2} / {n}))"
    half = f"({Z:.6f} / (1 + {_Z2} / {n}) * sqrt({p} * (1 - {p}) / {n} + {_Z2} / (4 * {n} ^ 2)))"
    return f"({centre} {sign} {half})"


def lift() -> str:
    return f"({_rate(TREATED)} - {_rate(CONTROL)})"


def lift_ci(end: str) -> str:
    """Newcombe: low = d - √((p₁-l₁)² + (u₂-p₂)²), high = d + √((u₁-p₁)² + (p₂-l₂)²)."""
    p1, p2 = _rate(TREATED), _rate(CONTROL)
    if end == "low":
        spread = f"sqrt(({p1} - {wilson(TREATED, '-')}) ^ 2 + ({wilson(CONTROL, '+')} - {p2}) ^ 2)"
        return f"({lift()} - {spread})"
    spread = f"sqrt(({wilson(TREATED, '+')} - {p1}) ^ 2 + ({p2} - {wilson(CONTROL, '-')}) ^ 2)"
    return f"({lift()} + {spread})"


def experiment_panels() -> list[stat.Panel | bargauge.Panel]:
    by_arm = (
        f"sum by (arm) (increase(retarget_segmenter_experiment_conversions_total{{{SCOPE}}}[$__range]))"
        f" / sum by (arm) (increase(retarget_segmenter_experiment_assigned_total{{{SCOPE}}}[$__range]))"
    )
    assigned = f"sum by (arm) (increase(retarget_segmenter_experiment_assigned_total{{{SCOPE}}}[$__range]))"
    return [
        bargauge.Panel()
        .title("conversion rate by arm (intent to treat: sent or held out)")
        .datasource(DATASOURCE)
        .height(6)
        .span(8)
        .unit("percentunit")
        .with_target(query(by_arm, "{{arm}}", instant=True).ref_id("A")),
        stat.Panel()
        .title("assigned by arm")
        .datasource(DATASOURCE)
        .height(6)
        .span(6)
        .with_target(query(assigned, "{{arm}}", instant=True).ref_id("A")),
        stat.Panel()
        .title("lift over the holdout, 95% CI (retarget funnel says when too small to conclude)")
        .datasource(DATASOURCE)
        .height(6)
        .span(10)
        .unit("percentunit")
        .decimals(2)
        .with_target(query(lift_ci("low"), "CI low", instant=True).ref_id("A"))
        .with_target(query(lift(), "lift", instant=True).ref_id("B"))
        .with_target(query(lift_ci("high"), "CI high", instant=True).ref_id("C")),
    ]
