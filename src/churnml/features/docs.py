"""Generate `docs/features.md` from the registry: `python -m churnml.features.docs [OUT]`."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from churnml.features.params import FAMILY_NAMES, FeatureParams
from churnml.features.registry import CAUSE_FAMILIES, feature_definitions

FAMILY_TITLES = {
    "calls": "Call patterns (`calls`)",
    "transfers": "Transfers (`transfers`)",
    "complaints": "Complaints (`complaints`)",
    "arrears": "Arrears and payments (`bills`, `payments`)",
    "account": "Account and life cycle (`customers`, with `transfers`, `bills`, `payments`)",
}

EXAMPLE_OPERATOR = "OperatorX"

RULES = """\
## Documented rules

**Point in time.** Every feature of a (customer, cutoff) row uses only rows strictly before the
cutoff. A window of *w* days is [cutoff - w days, cutoff). Facts that happen at a time are known
from that time only: a complaint's resolution and survey score from `resolved_at`, a bill from
`issued_at`, a payment from `paid_at`. `customers.terminated_at` and `termination_reason` of
the customer are never read; the social signal reads the *contacts'* `terminated_at`, and only
terminations before the cutoff. Dates that are promises (`commitment_end`, `due_at`) are used
as known. Note: `customers` is a snapshot, so a commitment renewed after the cutoff shows its
new end date (the data contract has no history of it).

**No-event rule.** A (customer, cutoff) with no rows in a family's table (or none in a
window) gets **0** for counts, sums, amounts, the weekly slopes, the highest severity, the
overdue amount and the days past due, and **null** for rates, shares, ratios, trends, means and
"days since" figures (nothing to divide or no event to date). The column "no events" below
gives the value per feature. "Days since" figures look back `history_days` (730 by default);
null means no event in that time. A customer missing from `customers` gets nulls for account
features. Nothing is imputed beyond this: LightGBM handles nulls.

**Trends.** `*_trend_30d_vs_prev60d` = (r - b) / (r + b) with r the last 30 days and b the
monthly average of the 60 days before (total / 2): -1 when the activity stopped, +1 when it is
new, 0 when flat, null when there was none in 90 days. Weekly slopes are least-squares slopes of
the 12 weekly totals before the cutoff (week 12 the latest), computed in one pass.

**Arrears (oldest bill first).** All bill payments (rows of `payments` with a `bill_id`) made
before the cutoff pay the bills issued before it in order of due date. The overdue amount is
what remains of bills due before the cutoff; the days past due are those of the oldest bill
not fully paid. A bill is *paid late* when the payments made by the end of its due date did not
cover it and all older bills. Payments without `bill_id` are prepaid top-ups.

**Plan and fee as of the cutoff.** The plan is the target of the last `plan_change` before the
cutoff, else `initial_plan_id`. The fee is that change's `monthly_fee`, else the fee last seen
(anyone's change to that plan) before the cutoff. A plan change is an upgrade (downgrade) when
its fee is higher (lower) than the fee before it: the customer's previous change, else the fee
last seen for the plan left.

**Value tier.** Customers of the spine are ranked per cutoff by `revenue_3m` (bills issued plus
top-ups in the last 90 days); with r the rank (ties share the best rank) and n the customers at
that cutoff, (r - 1) / n below the first cut is tier A, below the second B, below the third C,
else D. Default cuts `value_tier_cuts = [0.01, 0.05, 0.20]`: top 1 %, next 4 %, next 15 %, rest.

**Life-cycle stage** (first rule that holds; thresholds in `FeatureParams`):
1. `exit_risk`: the commitment ends within the next 60 days or ended in the last 30, or there
   was a port-out query or request in the last 30 days;
2. `acquisition`: tenure under 90 days;
3. `decline`: outgoing voice minutes trend (30 days vs the 60 before) at or below -0.3;
4. `build_up`: tenure under 365 days;
5. `maturity`: everyone else.
A rule whose data is missing (no `commitment_end`, no `transfers`, no `calls`) is skipped.

**Contacts and the social signal.** Contacts are the distinct `peer_id` values of calls and
SMS in either direction (told apart by a 64-bit hash, so grouping runs on integers). An on-net
contact is one whose `peer_id` is a `customer_id` of `customers`, activated before the cutoff
and not gone before the 90-day window; it *left* when its subscription ended in the 90 days
before the cutoff. The top competitor is the operator with the most outgoing voice minutes in
the last 30 days (ties: the largest figure of the 60 days before).

**Per-operator features: chosen once, at training time.** `resolve_feature_params(dataset_dir,
params, cutoff)` fills `competitors` with the `competitor_top_k` (default 5) other operators
that took the most outgoing voice minutes in the `competitor_lookback_days` (default 180)
before the latest training cutoff; a list set in the config is kept. The filled params are
recorded with the model and scoring rebuilds exactly those columns. Below they are shown for
one example operator, `OperatorX` (`operatorx` in the names).

**Value for money.** The fee is the fee as of the cutoff (rule above); 30 days before the
cutoff, the same rule at that date. Fee per minute and per GB divide the monthly fee by the
last 30 days' outgoing voice minutes or data GB (null when none); their change compares them
with the fee 30 days ago over the monthly average use of the 60 days before, as (r - b) /
(r + b). The data hold no plan allowances, so a plan *covers* a usage when the
`plan_coverage_quantile` (0.9) of its own subscribers' 30-day outgoing minutes and data (same
payment type, same cutoff, at least `plan_coverage_min_customers` = 20 of them) reaches it;
the cheapest covering plan is the lowest median fee among those plans (null: none covers it).

**Missing data.** A missing optional table skips its family (one log line); a missing optional
column drops only the features whose `requires` name it (one log line per family).
"""


def render_features_doc(params: FeatureParams | None = None) -> str:
    """The Markdown text of `docs/features.md`."""
    params = params or FeatureParams()
    base = len(feature_definitions(params))
    if not params.competitors:
        params = replace(params, competitors=[EXAMPLE_OPERATOR])
    defs = feature_definitions(params)
    per_operator = len(defs) - base
    lines = [
        "# Features",
        "",
        "Generated by `python -m churnml.features.docs` from the registry in "
        "`src/churnml/features/` (do not edit by hand). "
        f"{base} features with the default `FeatureParams` (windows {params.windows}), plus "
        f"{per_operator} for each competing operator chosen at training time (top "
        f"{params.competitor_top_k} by outgoing minutes; listed below for `{EXAMPLE_OPERATOR}`).",
        "",
        "Cause families: " + ", ".join(f"`{k}` ({v})" for k, v in CAUSE_FAMILIES.items()) + ".",
        "",
        RULES,
        "## Counts",
        "",
        "| family | features |",
        "|---|---|",
    ]
    for fam in FAMILY_NAMES:
        lines.append(f"| {fam} | {sum(d.family == fam for d in defs)} |")
    lines.append("")
    lines.append("| cause family | features |")
    lines.append("|---|---|")
    for cause, label in CAUSE_FAMILIES.items():
        lines.append(f"| {label} | {sum(d.spec.cause_family == cause for d in defs)} |")
    lines.append("")
    for fam in FAMILY_NAMES:
        lines += [
            f"## {FAMILY_TITLES[fam]}",
            "",
            "| feature | what it measures | table | window (days) | cause family | kind "
            "| no events "
            "| reason text |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for d in defs:
            if d.family != fam:
                continue
            s = d.spec
            fill = "null" if d.fill is None or s.kind == "categorical" else f"{d.fill:g}"
            if d.needs_features:
                fill = "rule"
            lines.append(
                f"| `{s.name}` | {s.description} | {s.table} | {s.window_days or ''} | "
                f"{s.cause_family} | {s.kind} | {fill} | {s.reason or ''} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else Path("docs/features.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_features_doc())


if __name__ == "__main__":
    main()
