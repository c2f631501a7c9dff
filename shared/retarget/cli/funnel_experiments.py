"""`retarget funnel`'s experiment table: per campaign and arm, the intent-to-treat counts, and
the lift over the holdout with its 95% interval (or why it can't be concluded yet)."""

from __future__ import annotations

from typing import Any

from retarget.common.experiment_funnel import experiment_fields

#: the JSON fields of a campaign that never fired since the counters began
NO_EXPERIMENT: dict[str, Any] = experiment_fields({})


def lift_text(fields: dict[str, Any]) -> str:
    """'+2.00 pts (95% CI +0.65 to +3.37), p=0.0037: <conclusion>', or why there is none."""
    if fields.get("lift") is None:
        return str(fields["lift_why"])
    text = (
        f"{fields['lift'] * 100:+.2f} pts (95% CI {fields['lift_ci_low'] * 100:+.2f} to "
        f"{fields['lift_ci_high'] * 100:+.2f}), p={fields['p_value']:.4f}"
    )
    if fields.get("revenue_lift") is not None:
        currency = fields.get("revenue_currency") or ""
        text += (
            f"; revenue/recipient {fields['revenue_lift']:+.2f} {currency} (95% CI "
            f"{fields['revenue_lift_ci_low']:+.2f} to {fields['revenue_lift_ci_high']:+.2f})"
        )
    return f"{text}: {fields['lift_why']}"


def print_experiments(experiments: dict[tuple[str, str], dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    if not experiments:
        return
    table = Table(title="experiments (intent to treat: every firing, sent or held out)", title_justify="left")
    for column in (
        "workspace",
        "campaign",
        "arm",
        "assigned",
        "converted",
        "rate",
        "revenue/recipient",
        "lift",
    ):
        table.add_column(
            column, justify="left" if column in ("workspace", "campaign", "arm", "lift") else "right"
        )
    for (workspace, campaign), fields in experiments.items():
        arms = dict(fields["variants"])
        for control in ("holdout", "global_holdout"):
            if fields.get(control) is not None:
                arms[control] = fields[control]
        for arm, row in arms.items():
            table.add_row(
                workspace,
                campaign,
                arm,
                f"{row['assigned']:,}",
                f"{row['converted']:,}",
                f"{row['conversion_rate'] * 100:.2f}%",
                f"{row['revenue_per_recipient']:,.2f}",
                ""
                if arm == "holdout"
                else lift_text({**row, "revenue_currency": fields["revenue_currency"]}),
            )
        if len(fields["variants"]) > 1:
            table.add_row(workspace, campaign, "all treated", "", "", "", "", lift_text(fields))
    Console(width=max(Console().width, 160)).print(table)
