"""Arrears and payments: overdue amount and days past due with oldest-bill-first allocation,
bills paid late, paid/due ratio; prepaid top-ups (`bills`, `payments`)."""

from __future__ import annotations

from churnml.features.params import FeatureParams
from churnml.features.registry import (
    EXACT_UNIT,
    FamilyBuilder,
    FeatureDef,
    Measure,
    exact_sum,
    fixed,
)

FAMILY = "arrears"
REQUIRED_TABLES = ("payments",)
# Money rounding tolerance: a bill counts as paid when at most this much is missing.
EPS = 0.005
_BILLS = (
    "bills.bill_id",
    "bills.customer_id",
    "bills.issued_at",
    "bills.due_at",
    "bills.amount_due",
)
_PAY = ("payments.customer_id", "payments.paid_at", "payments.amount", "payments.bill_id")
_ARREARS = (*_BILLS, *_PAY)
LATE_WINDOWS = (90, 180)
TOPUP_WINDOWS = (30, 90)
BILL_SHOCK_DAYS = 150


def measures(params: FeatureParams) -> dict[str, Measure]:
    m = {name: Measure("", _ARREARS) for name in ("due_cum", "paid_total", "dpd_s")}
    for w in LATE_WINDOWS:
        m[f"late_{w}"] = Measure("", _ARREARS)
    m["paid_180"] = Measure("", _PAY)
    m["due_180"] = Measure("", _BILLS)
    m["bill_last"] = Measure("", _BILLS)
    m["bill_prev3"] = Measure("", _BILLS)
    for w in TOPUP_WINDOWS:
        m[f"tu_n_{w}"] = Measure("", _PAY)
        m[f"tu_amt_{w}"] = Measure("", _PAY)
    m["tu_amt_p60"] = Measure("", _PAY)
    m["tu_last_s"] = Measure("", _PAY)
    return m


def definitions(params: FeatureParams) -> list[FeatureDef]:
    b = FamilyBuilder(FAMILY, "bills", measures(params))
    b.add(
        "overdue_amount",
        "Amount of bills past their due date still unpaid, paying the oldest bill first.",
        "billing_arrears",
        "greatest(coalesce(due_cum, 0) - coalesce(paid_total, 0), 0)",
        reason="{value:.2f} overdue on bills",
    )
    b.add(
        "days_past_due_oldest_unpaid",
        "Days past due of the oldest bill not fully paid (0: nothing overdue).",
        "billing_arrears",
        "coalesce(dpd_s, 0) / 86400.0",
        reason="oldest unpaid bill is {value:.0f} days past due",
    )
    for w in LATE_WINDOWS:
        b.add(
            f"bills_paid_late_{w}d",
            f"Bills due in the last {w} days not fully paid by their due date (oldest first).",
            "billing_arrears",
            f"late_{w}",
            window_days=w,
            reason=f"{{value:.0f}} bills paid late in the last {w // 30} months",
        )
    b.add(
        "paid_to_due_ratio_180d",
        "Bill payments of the last 180 days divided by the amounts of bills issued in them.",
        "billing_arrears",
        "paid_180 / nullif(due_180, 0)",
        window_days=180,
        fill=None,
        reason="paid {pct:.0f} % of the amounts billed in the last 6 months",
    )
    for w in TOPUP_WINDOWS:
        b.add(
            f"topups_{w}d",
            f"Number of prepaid top-ups in the last {w} days.",
            "usage_decline",
            f"tu_n_{w}",
            table="payments",
            window_days=w,
            reason=f"{{value:.0f}} top-ups in the last {w} days",
        )
        b.add(
            f"topup_amount_{w}d",
            f"Amount topped up in the last {w} days.",
            "usage_decline",
            f"tu_amt_{w}",
            table="payments",
            window_days=w,
            reason=f"topped up {{value:.0f}} in the last {w} days",
        )
    b.add(
        "topup_amount_trend_30d_vs_prev60d",
        "Change of the amount topped up: last 30 days against the monthly average of the 60 "
        "days before, as (recent - before) / (recent + before).",
        "usage_decline",
        "(tu_amt_30 - tu_amt_p60 / 2.0) / nullif(tu_amt_30 + tu_amt_p60 / 2.0, 0)",
        table="payments",
        window_days=90,
        fill=None,
        reason="top-ups {trend} in the last 30 days vs the 2 months before",
    )
    b.add(
        "days_since_last_topup",
        f"Days since the last prepaid top-up (null: none in {params.history_days} days).",
        "usage_decline",
        "tu_last_s / 86400.0",
        table="payments",
        fill=None,
        reason="last top-up {value:.0f} days ago",
    )
    b.add(
        "last_bill_to_prev3_avg_ratio",
        f"Amount of the last bill issued (in the {BILL_SHOCK_DAYS} days before the cutoff) over "
        "the average of the up to 3 bills before it: a bill shock (overage, roaming, a price "
        "rise) when well above 1.",
        "price",
        "bill_last / nullif(bill_prev3, 0)",
        window_days=BILL_SHOCK_DAYS,
        fill=None,
        reason="last bill {value:.1f} times the average of the bills before",
    )
    return b.defs


def build_sql(ctx, defs: list[FeatureDef]) -> str | None:
    if not defs:
        return None
    d = ctx.dialect
    params = ctx.params
    used = {x for f in defs for x in f.measures}
    hi = d.timestamp(ctx.max_cutoff)
    ctes, joins = [], []
    bills = bool(
        used & {"due_cum", "dpd_s", "due_180", "bill_last", "bill_prev3"}
        or any(x.startswith("late_") for x in used)
    )
    if bills or "paid_total" in used or "paid_180" in used:
        # Bill payments over all history: arrears are a running balance.
        bp = ctx.scan(
            "payments",
            ["customer_id", "paid_at", "amount"],
            f"bill_id IS NOT NULL AND paid_at < {hi}",
        )
        ctes.append(
            f"kp AS {d.materialized()}(SELECT k.kid, k.cutoff, p.paid_at, p.amount,"
            f" {d.seconds_between('p.paid_at', 'k.cutoff')} AS age_s"
            f" FROM {bp} p JOIN keys k ON {ctx.window_join('p', 'paid_at', None)})"
        )
        ctes.append(
            f"paid AS (SELECT kid, {exact_sum('amount')} AS paid_total,"
            f" {exact_sum(f'CASE WHEN age_s <= {180 * 86400} THEN amount ELSE 0 END')}"
            " AS paid_180"
            " FROM kp GROUP BY kid)"
        )
        joins.append("paid")
    if bills:
        bl = ctx.scan(
            "bills",
            ["bill_id", "customer_id", "issued_at", "due_at", "amount_due"],
            f"issued_at < {hi}",
        )
        ctes.append(
            f"kb AS {d.materialized()}(SELECT k.kid, k.cutoff, b.due_at, b.issued_at, b.amount_due,"
            f" sum({fixed('b.amount_due')}) OVER (PARTITION BY k.kid"
            " ORDER BY b.due_at, b.issued_at, b.bill_id ROWS UNBOUNDED PRECEDING)"
            f" / {EXACT_UNIT}.0 AS cum_due"
            f" FROM {bl} b JOIN keys k ON {ctx.window_join('b', 'issued_at', None)})"
        )
        # A bill is on time when the payments made up to the end of its due date cover it
        # and every older bill. Due events sort before payments at the same instant.
        ctes.append(
            "pev AS (SELECT kid, cutoff, due_at + INTERVAL '1' DAY AS t, 1 AS is_due,"
            " cum_due, 0.0 AS amt, due_at FROM kb WHERE due_at < cutoff"
            " UNION ALL SELECT kid, cutoff, paid_at, 0, NULL, amount, NULL FROM kp)"
        )
        ctes.append(
            "run AS (SELECT kid, cutoff, due_at, cum_due, is_due,"
            f" sum({fixed('amt')}) OVER (PARTITION BY kid ORDER BY t, is_due DESC"
            f" ROWS UNBOUNDED PRECEDING) / {EXACT_UNIT}.0 AS paid_by FROM pev)"
        )
        late = ", ".join(
            f"count(CASE WHEN due_at >= {d.minus_days('cutoff', w)} AND paid_by < cum_due - {EPS}"
            f" THEN 1 END) AS late_{w}"
            for w in LATE_WINDOWS
        )
        ctes.append(f"late AS (SELECT kid, {late} FROM run WHERE is_due = 1 GROUP BY kid)")
        ctes.append(
            "bagg AS (SELECT kb.kid,"
            " max(CASE WHEN kb.due_at < kb.cutoff THEN kb.cum_due END) AS due_cum,"
            " max(CASE WHEN kb.due_at < kb.cutoff AND kb.cum_due >"
            f" coalesce(paid.paid_total, 0) + {EPS}"
            f" THEN {d.seconds_between('kb.due_at', 'kb.cutoff')} END) AS dpd_s,"
            " "
            + exact_sum(
                f"CASE WHEN kb.issued_at >= {d.minus_days('kb.cutoff', 180)}"
                " THEN kb.amount_due ELSE 0 END"
            )
            + " AS due_180"
            " FROM kb LEFT JOIN paid ON paid.kid = kb.kid"
            " GROUP BY kb.kid)"
        )
        joins += ["late", "bagg"]
        # Bill shock: the latest bill against the (up to) 3 before it, all issued before the
        # cutoff and within BILL_SHOCK_DAYS of it.
        prev3 = "CASE WHEN rn BETWEEN 2 AND 4 THEN amount_due END"
        ctes.append(
            "shock AS (SELECT kid, max(CASE WHEN rn = 1 THEN amount_due END) AS bill_last,"
            f" {exact_sum(prev3)} / nullif(count({prev3}), 0) AS bill_prev3"
            " FROM (SELECT kid, amount_due, row_number() OVER (PARTITION BY kid"
            " ORDER BY issued_at DESC, due_at DESC, amount_due DESC) AS rn FROM kb"
            f" WHERE issued_at >= {d.minus_days('cutoff', BILL_SHOCK_DAYS)}) GROUP BY kid)"
        )
        joins.append("shock")
    if any(x.startswith("tu_") for x in used):
        hist = max(params.history_days, 90)
        tp = ctx.scan(
            "payments",
            ["customer_id", "paid_at", "amount"],
            ctx.time_range("paid_at", hist) + " AND bill_id IS NULL",
        )
        age = d.seconds_between("p.paid_at", "k.cutoff")
        parts = []
        for w in TOPUP_WINDOWS:
            parts.append(f"sum(CASE WHEN {age} <= {w * 86400} THEN 1 ELSE 0 END) AS tu_n_{w}")
            parts.append(
                exact_sum(f"CASE WHEN {age} <= {w * 86400} THEN p.amount ELSE 0 END")
                + f" AS tu_amt_{w}"
            )
        parts.append(
            exact_sum(
                f"CASE WHEN {age} > {30 * 86400} AND {age} <= {90 * 86400} THEN p.amount ELSE 0 END"
            )
            + " AS tu_amt_p60"
        )
        parts.append(f"min({age}) AS tu_last_s")
        ctes.append(
            f"topup AS (SELECT k.kid, {', '.join(parts)}"
            f" FROM {tp} p JOIN keys k ON {ctx.window_join('p', 'paid_at', hist)}"
            " GROUP BY k.kid)"
        )
        joins.append("topup")
    select = ", ".join(f"{f.expr} AS {f.spec.name}" for f in defs)
    join_sql = " ".join(f"LEFT JOIN {j} USING (kid)" for j in joins)
    return "WITH " + ",\n".join(ctes) + f"\nSELECT kid, {select} FROM keys {join_sql}"
