"""Account and life cycle: tenure, life-cycle stage, commitment, payment type, plan and fee as of
the cutoff, 3-month revenue and value tier, region and age (`customers`, with `transfers`
for plan changes and `bills`/`payments` for revenue)."""

from __future__ import annotations

from churnml.contract import VALUE_TIERS
from churnml.features.dialect import Dialect
from churnml.features.params import FeatureParams
from churnml.features.registry import FamilyBuilder, FeatureDef, Measure, exact_sum

FAMILY = "account"
REQUIRED_TABLES = ("customers",)
LIFECYCLE_STAGES = ("acquisition", "build_up", "maturity", "decline", "exit_risk")

_PLAN = (
    "transfers.customer_id",
    "transfers.occurred_at",
    "transfers.kind",
    "transfers.to_plan_id",
    "transfers.monthly_fee",
)


def measures(params: FeatureParams) -> dict[str, Measure]:
    c = "customers."
    return {
        "tenure_s": Measure("", (c + "customer_id", c + "activated_at")),
        "commit_s": Measure("", (c + "customer_id", c + "commitment_end")),
        "payment_type_v": Measure("", (c + "customer_id", c + "payment_type")),
        "plan_v": Measure("", (c + "customer_id", c + "initial_plan_id")),
        "fee_v": Measure("", (c + "customer_id", c + "initial_plan_id", *_PLAN)),
        "revenue_v": Measure("", ()),
        "region_v": Measure("", (c + "customer_id", c + "region")),
        "birth_year_v": Measure("", (c + "customer_id", c + "birth_year")),
    }


def definitions(params: FeatureParams) -> list[FeatureDef]:
    b = FamilyBuilder(FAMILY, "customers", measures(params))
    b.add(
        "tenure_days",
        "Days since activation.",
        "tenure_value",
        "tenure_s / 86400.0",
        fill=None,
        reason="customer for {value:.0f} days",
    )
    b.add(
        "lifecycle_stage",
        "Life-cycle stage: acquisition, build_up, maturity, decline or exit_risk (rules in "
        "docs/features.md).",
        "contract_lifecycle",
        "",
        kind="categorical",
        fill=None,
        requires=("customers.customer_id", "customers.activated_at"),
        needs_features=("tenure_days",),
        reason="life-cycle stage: {value}",
    )
    b.add(
        "days_to_commitment_end",
        "Days from the cutoff to the end of the contract or lock-in (negative: days since it "
        "ended; null: no commitment).",
        "contract_lifecycle",
        "commit_s / 86400.0",
        fill=None,
        reason="commitment ends in {value:.0f} days",
    )
    b.add(
        "payment_type",
        "Prepaid or postpaid.",
        "contract_lifecycle",
        "payment_type_v",
        kind="categorical",
        fill=None,
    )
    b.add(
        "plan_id",
        "Tariff plan as of the cutoff (the initial plan, then the last plan change before it).",
        "price",
        "plan_v",
        kind="categorical",
        fill=None,
    )
    b.add(
        "monthly_fee",
        "Recurring fee of the plan as of the cutoff (from the last plan change, else the fee "
        "last seen for the initial plan).",
        "price",
        "fee_v",
        table="transfers",
        fill=None,
        reason="monthly fee of {value:.2f}",
    )
    b.add(
        "revenue_3m",
        "Revenue of the last 90 days: amounts of bills issued plus prepaid top-ups.",
        "tenure_value",
        "revenue_v",
        table="bills",
        window_days=90,
        reason="revenue of {value:.0f} over the last 3 months",
    )
    b.add(
        "arpu_monthly_3m",
        "Average monthly revenue over the last 90 days (revenue_3m / 3).",
        "tenure_value",
        "revenue_v / 3.0",
        table="bills",
        window_days=90,
        reason="average revenue of {value:.0f} a month",
    )
    b.add(
        "value_tier",
        "Value tier by 3-month revenue among the customers scored at the same cutoff: A top 1 %, "
        "B next 4 %, C next 15 %, D the rest (cuts from params; a down-sampled spine row counts "
        "as many customers as its weight).",
        "tenure_value",
        "",
        table="bills",
        window_days=90,
        kind="categorical",
        fill=None,
        needs_features=("revenue_3m",),
        reason="value tier {value}",
    )
    b.add(
        "region",
        "Region of the subscriber.",
        "tenure_value",
        "region_v",
        kind="categorical",
        fill=None,
    )
    b.add(
        "age_years",
        "Age in years at the cutoff (cutoff year minus birth year).",
        "tenure_value",
        "birth_year_v",
        fill=None,
    )
    return b.defs


def build_sql(ctx, defs: list[FeatureDef]) -> str | None:
    d = ctx.dialect
    used = {m for f in defs for m in f.measures}
    cust = ctx.scan("customers", ctx.needed_columns("customers", defs, "customer_id"))
    ctes = [f"c AS {cust}"]
    joins = ["LEFT JOIN c ON c.customer_id = k.customer_id"]
    expr = {
        "tenure_s": d.seconds_between("c.activated_at", "k.cutoff"),
        "commit_s": d.seconds_between("k.cutoff", "c.commitment_end"),
        "payment_type_v": "c.payment_type",
        "plan_v": "c.initial_plan_id",
        "region_v": "c.region",
        "birth_year_v": f"{d.year('k.cutoff')} - c.birth_year",
    }
    plan_ok = all(ctx.has(r) for r in _PLAN)
    if plan_ok and ("plan_v" in used or "fee_v" in used):
        pc = ctx.scan(
            "transfers",
            ["customer_id", "occurred_at", "to_plan_id", "monthly_fee"],
            f"kind = 'plan_change' AND occurred_at < {d.timestamp(ctx.max_cutoff)}",
        )
        ctes.append(f"pc AS {pc}")
        ctes.append(
            "pl AS (SELECT k.kid,"
            " max_by(pc.to_plan_id, pc.occurred_at) AS last_plan,"
            " max_by(pc.monthly_fee, pc.occurred_at) AS last_fee"
            " FROM pc JOIN keys k ON pc.customer_id = k.customer_id AND pc.occurred_at < k.cutoff"
            " GROUP BY k.kid)"
        )
        # The fee of a plan as known before the cutoff: the latest change to it, by anyone.
        ctes.append(
            "plan_fee AS (SELECT cu.cutoff, pc.to_plan_id AS plan_id,"
            " max_by(pc.monthly_fee, pc.occurred_at) AS fee"
            " FROM pc JOIN (SELECT DISTINCT cutoff FROM keys) cu ON pc.occurred_at < cu.cutoff"
            " GROUP BY cu.cutoff, pc.to_plan_id)"
        )
        joins.append("LEFT JOIN pl ON pl.kid = k.kid")
        joins.append(
            "LEFT JOIN plan_fee pf ON pf.cutoff = k.cutoff AND pf.plan_id = c.initial_plan_id"
        )
        expr["plan_v"] = "coalesce(pl.last_plan, c.initial_plan_id)"
        expr["fee_v"] = "coalesce(pl.last_fee, pf.fee)"
    rev_parts = []
    if "revenue_v" in used:
        if ctx.has_table("bills") and all(
            ctx.has(f"bills.{c}") for c in ("customer_id", "issued_at", "amount_due")
        ):
            scan = ctx.scan(
                "bills",
                ["customer_id", "issued_at", "amount_due"],
                ctx.time_range("issued_at", 90),
            )
            ctes.append(
                f"rb AS (SELECT k.kid, {exact_sum('b.amount_due')} AS r"
                f" FROM {scan} b JOIN keys k ON {ctx.window_join('b', 'issued_at', 90)}"
                " GROUP BY k.kid)"
            )
            joins.append("LEFT JOIN rb ON rb.kid = k.kid")
            rev_parts.append("coalesce(rb.r, 0)")
        if ctx.has_table("payments") and all(
            ctx.has(f"payments.{c}") for c in ("customer_id", "paid_at", "amount", "bill_id")
        ):
            scan = ctx.scan(
                "payments",
                ["customer_id", "paid_at", "amount"],
                ctx.time_range("paid_at", 90) + " AND bill_id IS NULL",
            )
            ctes.append(
                f"rp AS (SELECT k.kid, {exact_sum('p.amount')} AS r"
                f" FROM {scan} p JOIN keys k ON {ctx.window_join('p', 'paid_at', 90)}"
                " GROUP BY k.kid)"
            )
            joins.append("LEFT JOIN rp ON rp.kid = k.kid")
            rev_parts.append("coalesce(rp.r, 0)")
    if rev_parts:
        expr["revenue_v"] = " + ".join(rev_parts)
    select = []
    for f in defs:
        if f.needs_features:
            continue
        if any(m not in expr for m in f.measures):
            continue
        sql = f.expr
        for m in f.measures:
            sql = sql.replace(m, f"({expr[m]})")
        select.append(f"{sql} AS {f.spec.name}")
    return (
        "WITH " + ",\n".join(ctes) + "\n"
        f"SELECT k.kid{''.join(', ' + s for s in select)} FROM keys k " + " ".join(joins)
    )


def value_tier_sql(
    revenue: str,
    cuts: list[float],
    partition: str = "cutoff",
    weight: str = "weight",
    dialect: Dialect | None = None,
) -> str:
    """The value tier (A, B, C, D) of each row by revenue among the rows of its partition.

    The one implementation of the tiers (features and scoring both use it). Shares are exact:
    customers are ranked by revenue, ties broken by the md5 of the customer id (deterministic,
    and unrelated to how ids are numbered), so the tiers hold 1 / 4 / 15 / 80 % of the
    customers even when many have the same revenue. A row counts as `weight` customers (a
    down-sampled spine row stands for several).
    """
    cuts = sorted(cuts)
    if len(cuts) != len(VALUE_TIERS) - 1:
        raise ValueError(f"value_tier_cuts needs {len(VALUE_TIERS) - 1} cuts, got {cuts}")
    text = (dialect or Dialect()).text_type()
    order = f"ORDER BY {revenue} DESC NULLS LAST, md5(CAST(customer_id AS {text}))"
    ahead = (
        f"(sum({weight}) OVER (PARTITION BY {partition} {order}"
        f" ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) - {weight})"
    )
    share = f"{ahead} / (sum({weight}) OVER (PARTITION BY {partition}))"
    whens = " ".join(
        f"WHEN {share} < {cut} THEN '{tier}'" for cut, tier in zip(cuts, VALUE_TIERS, strict=False)
    )
    return f"CASE WHEN {revenue} IS NULL THEN NULL {whens} ELSE '{VALUE_TIERS[-1]}' END"


def final_expr(
    defn: FeatureDef, columns: set[str], params: FeatureParams, dialect: Dialect | None = None
) -> str | None:
    """Features computed over the joined families: life-cycle stage and value tier."""
    if defn.spec.name == "value_tier":
        if "revenue_3m" not in columns:
            return None
        return value_tier_sql("revenue_3m", params.value_tier_cuts, dialect=dialect)
    if defn.spec.name == "lifecycle_stage":
        if "tenure_days" not in columns:
            return None
        p = params
        exit_conds = []
        if "days_to_commitment_end" in columns:
            exit_conds.append(
                f"days_to_commitment_end BETWEEN -{p.lifecycle_exit_days_after_commitment_end}"
                f" AND {p.lifecycle_exit_days_before_commitment_end}"
            )
        if "_lc_port_out_30d" in columns:
            exit_conds.append("_lc_port_out_30d > 0")
        whens = ["WHEN tenure_days IS NULL THEN NULL"]
        if exit_conds:
            whens.append(f"WHEN {' OR '.join(exit_conds)} THEN 'exit_risk'")
        whens.append(f"WHEN tenure_days < {p.lifecycle_acquisition_days} THEN 'acquisition'")
        if "_lc_usage_trend" in columns:
            whens.append(f"WHEN _lc_usage_trend <= {p.lifecycle_decline_trend} THEN 'decline'")
        whens.append(f"WHEN tenure_days < {p.lifecycle_buildup_days} THEN 'build_up'")
        return f"CASE {' '.join(whens)} ELSE 'maturity' END"
    return None
