"""Value for money: the recurring fee against the usage it buys (calls family, one pass).

A customer paying for far more than they use, or for a plan dearer than the cheapest one that
would cover their use, is who a cheaper offer elsewhere wins. These features need the fee as
of the cutoff (customers' initial plan, then `transfers` plan changes) and the usage of the
calls family's main pass, so they are built in the calls query: the fee is a small join on
keys, the usage comes from the pass already made, and no extra scan of the calls is needed.

"Covers": the data hold no plan allowances, so a plan covers a usage when the
`plan_coverage_quantile` of its own subscribers' 30-day outgoing minutes and data volume
(same payment type, same cutoff) reaches it. The cheapest covering plan is the lowest median
fee among such plans.
"""

from __future__ import annotations

from churnml.features.registry import FamilyBuilder, Measure

_FEE = (
    "customers.customer_id",
    "customers.initial_plan_id",
    "transfers.customer_id",
    "transfers.occurred_at",
    "transfers.kind",
    "transfers.to_plan_id",
    "transfers.monthly_fee",
)
_CHEAPEST = (
    *_FEE,
    "customers.payment_type",
    "calls.kind",
    "calls.direction",
    "calls.duration_s",
    "calls.volume_mb",
)
# Usage measures of the main pass the cheapest-plan stage reads.
USAGE = ("vo_min_30", "data_mb_30")
PREV_DAYS = 30


def measures() -> dict[str, Measure]:
    """The fee-stage measures (their SQL is built in `value_ctes`)."""
    return {
        "vfm_fee": Measure("", _FEE),
        "vfm_fee_prev": Measure("", _FEE),
        "vfm_cheapest": Measure("", _CHEAPEST),
    }


def _change(now: str, before: str) -> str:
    return f"({now} - {before}) / nullif({now} + {before}, 0)"


def add_value_definitions(b: FamilyBuilder) -> None:
    """Register the value-for-money features on the calls family's builder."""
    per_minute = "vfm_fee / nullif(vo_min_30, 0)"
    per_gb = "vfm_fee / nullif(data_mb_30 / 1024.0, 0)"
    change = (
        "Change of the fee per {unit} used: the last 30 days (fee as of the cutoff) against the "
        "monthly average of the 60 days before (fee as of 30 days before the cutoff), as "
        "(recent - before) / (recent + before); positive: paying more for each {unit}."
    )
    b.add(
        "fee_per_voice_minute_30d",
        "Recurring monthly fee per outgoing voice minute of the last 30 days (null: no calls).",
        "price",
        per_minute,
        window_days=30,
        fill=None,
        reason="pays {value:.2f} per minute of calls made (monthly fee over last 30 days' use)",
    )
    b.add(
        "fee_per_gb_30d",
        "Recurring monthly fee per GB of data used in the last 30 days (null: no data).",
        "price",
        per_gb,
        window_days=30,
        fill=None,
        reason="pays {value:.2f} per GB of data used (monthly fee over last 30 days' use)",
    )
    b.add(
        "fee_per_voice_minute_change_30d_vs_prev60d",
        change.format(unit="outgoing voice minute"),
        "price",
        _change(per_minute, "vfm_fee_prev / nullif(vo_min_p60 / 2.0, 0)"),
        window_days=90,
        fill=None,
        reason="price per minute of calls made {trend} in the last 30 days vs the 2 months before",
    )
    b.add(
        "fee_per_gb_change_30d_vs_prev60d",
        change.format(unit="GB of data"),
        "price",
        _change(per_gb, "vfm_fee_prev / nullif(data_mb_p60 / 2048.0, 0)"),
        window_days=90,
        fill=None,
        reason="price per GB of data used {trend} in the last 30 days vs the 2 months before",
    )
    b.add(
        "monthly_fee_over_cheapest_covering_plan",
        "Monthly fee minus the fee of the cheapest plan (same payment type) whose subscribers "
        "commonly use as much as this customer did in the last 30 days (negative: the usage "
        "outgrows the plan; null: no plan covers it).",
        "price",
        "vfm_fee - vfm_cheapest",
        window_days=30,
        fill=None,
        reason="pays {value:.2f} a month more than the cheapest plan that covers their use",
    )
    b.add(
        "monthly_fee_to_cheapest_covering_plan_ratio",
        "Monthly fee over the fee of the cheapest plan that would cover the last 30 days' use.",
        "price",
        "vfm_fee / nullif(vfm_cheapest, 0)",
        window_days=30,
        fill=None,
        reason="pays {value:.1f} times the fee of the cheapest plan that covers their use",
    )


def value_ctes(ctx, cheapest: bool) -> list[str]:
    """CTEs ending in `vfm` (kid, vfm_fee, vfm_fee_prev, vfm_cheapest); `cheapest` needs the
    main pass `agg` with the USAGE measures. Every row they read lies before the cutoff."""
    d = ctx.dialect
    p = ctx.params
    cust = ctx.scan("customers", ["customer_id", "initial_plan_id", "payment_type"])
    pcs = ctx.scan(
        "transfers",
        ["customer_id", "occurred_at", "to_plan_id", "monthly_fee"],
        f"kind = 'plan_change' AND occurred_at < {d.timestamp(ctx.max_cutoff)}",
    )
    before = d.minus_days("k.cutoff", PREV_DAYS)
    ctes = [
        f"vc AS {cust}",
        f"vpc AS {d.materialized()}{pcs}",
        # The customer's own plan and fee now and 30 days ago (last change before each).
        "vpl AS (SELECT k.kid, max_by(p.to_plan_id, p.occurred_at) AS plan_now,"
        " max_by(p.monthly_fee, p.occurred_at) AS fee_now,"
        f" max_by(p.monthly_fee, p.occurred_at) FILTER (WHERE p.occurred_at < {before})"
        " AS fee_prev"
        " FROM vpc p JOIN keys k ON p.customer_id = k.customer_id AND p.occurred_at < k.cutoff"
        " GROUP BY k.kid)",
        # A plan's fee as known at a date: the latest change to it, by anyone, before it.
        "vpts AS (SELECT DISTINCT cutoff AS at FROM keys UNION"
        f" SELECT DISTINCT {d.minus_days('cutoff', PREV_DAYS)} FROM keys)",
        "vpf AS (SELECT t.at, p.to_plan_id AS plan_id, max_by(p.monthly_fee, p.occurred_at) AS fee"
        " FROM vpc p JOIN vpts t ON p.occurred_at < t.at GROUP BY t.at, p.to_plan_id)",
        "vfee AS (SELECT k.kid, k.cutoff, c.payment_type,"
        " coalesce(l.plan_now, c.initial_plan_id) AS plan_id,"
        " coalesce(l.fee_now, f0.fee) AS vfm_fee, coalesce(l.fee_prev, f1.fee) AS vfm_fee_prev"
        " FROM keys k LEFT JOIN vc c ON c.customer_id = k.customer_id"
        " LEFT JOIN vpl l ON l.kid = k.kid"
        " LEFT JOIN vpf f0 ON f0.at = k.cutoff AND f0.plan_id = c.initial_plan_id"
        f" LEFT JOIN vpf f1 ON f1.at = {before} AND f1.plan_id = c.initial_plan_id)",
    ]
    if not cheapest:
        ctes.append("vfm AS (SELECT kid, vfm_fee, vfm_fee_prev, NULL AS vfm_cheapest FROM vfee)")
        return ctes
    q = float(p.plan_coverage_quantile)
    least = int(p.plan_coverage_min_customers)
    ctes += [
        "vuse AS (SELECT f.kid, f.cutoff, f.payment_type, f.plan_id, f.vfm_fee AS fee,"
        " coalesce(a.vo_min_30, 0) AS mins, coalesce(a.data_mb_30, 0) AS mb"
        " FROM vfee f LEFT JOIN agg a USING (kid)"
        " WHERE f.vfm_fee IS NOT NULL AND f.payment_type IS NOT NULL)",
        # Exact, interpolated quantiles on both engines (DuckDB quantile_cont, Spark percentile).
        f"vcap AS (SELECT cutoff, payment_type, plan_id, {d.quantile('fee', 0.5)} AS fee,"
        f" {d.quantile('mins', q)} AS mins_cap, {d.quantile('mb', q)} AS mb_cap FROM vuse"
        f" GROUP BY cutoff, payment_type, plan_id HAVING count(*) >= {least})",
        "vcheap AS (SELECT u.kid, min(c.fee) AS vfm_cheapest FROM vuse u JOIN vcap c"
        " ON c.cutoff = u.cutoff AND c.payment_type = u.payment_type"
        " AND c.mins_cap >= u.mins AND c.mb_cap >= u.mb GROUP BY u.kid)",
        "vfm AS (SELECT f.kid, f.vfm_fee, f.vfm_fee_prev, ch.vfm_cheapest"
        " FROM vfee f LEFT JOIN vcheap ch USING (kid))",
    ]
    return ctes
