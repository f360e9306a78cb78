"""Transfers: port-out queries, requests and cancels, plan upgrades and downgrades and the fee
change, ownership changes, SIM swaps and balance transfers (`transfers`)."""

from __future__ import annotations

from churnml.features.params import FeatureParams
from churnml.features.registry import (
    FamilyBuilder,
    FeatureDef,
    Measure,
    cond_sum,
    exact_sum,
    slug,
    within,
)

FAMILY = "transfers"
REQUIRED_TABLES = ("transfers",)
_BASE = ("transfers.customer_id", "transfers.occurred_at", "transfers.kind")
_PLAN = (*_BASE, "transfers.from_plan_id", "transfers.to_plan_id", "transfers.monthly_fee")
_AMOUNT = (*_BASE, "transfers.amount")
PLAN_WINDOW = 90
PORT_OUT = {"query": "port_out_query", "request": "port_out_request", "cancel": "port_out_cancel"}


def measures(params: FeatureParams) -> dict[str, Measure]:
    m: dict[str, Measure] = {}
    for w in sorted(set(params.windows) | {30, 90}):
        for short, kind in PORT_OUT.items():
            m[f"po_{short}_{w}"] = Measure(cond_sum(f"kind = '{kind}' AND {within(w)}"), _BASE)
        m[f"sim_swap_{w}"] = Measure(cond_sum(f"kind = 'sim_swap' AND {within(w)}"), _BASE)
        m[f"owner_{w}"] = Measure(cond_sum(f"kind = 'ownership_change' AND {within(w)}"), _BASE)
    for short, kind in PORT_OUT.items():
        m[f"po_{short}_last_s"] = Measure(f"min(CASE WHEN kind = '{kind}' THEN age_s END)", _BASE)
    for short in ("out", "in"):
        cond = f"kind = 'balance_transfer_{short}' AND {within(90)}"
        m[f"bt_{short}_amount_90"] = Measure(f"coalesce({exact_sum('amount', cond)}, 0)", _AMOUNT)
    m["bt_out_n_90"] = Measure(cond_sum(f"kind = 'balance_transfer_out' AND {within(90)}"), _BASE)
    for c in params.competitors:
        lit = str(c).replace("'", "''")
        m[f"po_to_{slug(c)}_90"] = Measure(
            cond_sum(
                f"kind IN ('port_out_query', 'port_out_request') AND operator = '{lit}'"
                f" AND {within(90)}"
            ),
            (*_BASE, "transfers.operator"),
        )
    # Plan stage (built apart in build_sql): changes in the last 90 days and their fee deltas.
    m["plan_down_90"] = Measure("", _PLAN)
    m["plan_up_90"] = Measure("", _PLAN)
    m["fee_change_90"] = Measure("", _PLAN)
    return m


def definitions(params: FeatureParams) -> list[FeatureDef]:
    b = FamilyBuilder(FAMILY, "transfers", measures(params))
    for w in params.windows:
        b.add(
            f"port_out_queries_{w}d",
            f"Number of port-out queries (asking how to move the number away), last {w} days.",
            "competitor",
            f"po_query_{w}",
            window_days=w,
            reason=f"{{value:.0f}} port-out queries in the last {w} days",
        )
        b.add(
            f"port_out_requests_{w}d",
            f"Number of port-out requests (asking to move the number away), last {w} days.",
            "competitor",
            f"po_request_{w}",
            window_days=w,
            reason=f"{{value:.0f}} port-out requests in the last {w} days",
        )
        b.add(
            f"port_out_cancels_{w}d",
            f"Number of cancelled port-out requests in the last {w} days.",
            "competitor",
            f"po_cancel_{w}",
            window_days=w,
            reason=f"{{value:.0f}} port-out requests cancelled in the last {w} days",
        )
    b.add(
        "days_since_port_out_query",
        f"Days since the last port-out query (null: none in {params.history_days} days).",
        "competitor",
        "po_query_last_s / 86400.0",
        fill=None,
        reason="asked about porting the number out {value:.0f} days ago",
    )
    b.add(
        "days_since_port_out_request",
        f"Days since the last port-out request (null: none in {params.history_days} days).",
        "competitor",
        "po_request_last_s / 86400.0",
        fill=None,
        reason="requested a port-out {value:.0f} days ago",
    )
    b.add(
        "port_out_request_open",
        "Whether a port-out request is pending: 1 when the last request is more recent than "
        "the last cancel, else 0.",
        "competitor",
        "CASE WHEN po_request_last_s IS NOT NULL AND (po_cancel_last_s IS NULL"
        " OR po_request_last_s < po_cancel_last_s) THEN 1 ELSE 0 END",
        reason="has a port-out request that was not cancelled",
    )
    for c in params.competitors:
        b.add(
            f"port_out_contacts_to_{slug(c)}_90d",
            f"Port-out queries and requests naming operator {c} in the last 90 days.",
            "competitor",
            f"po_to_{slug(c)}_90",
            window_days=90,
            reason=f"asked {{value:.0f}} times about moving the number to {c} (last 90 days)",
        )
    b.add(
        "plan_downgrades_90d",
        "Number of plan changes to a cheaper recurring fee in the last 90 days.",
        "price",
        "plan_down_90",
        window_days=90,
        reason="moved to a cheaper plan {value:.0f} times in the last 90 days",
    )
    b.add(
        "plan_upgrades_90d",
        "Number of plan changes to a dearer recurring fee in the last 90 days.",
        "price",
        "plan_up_90",
        window_days=90,
        reason="moved to a dearer plan {value:.0f} times in the last 90 days",
    )
    b.add(
        "monthly_fee_change_90d",
        "Change of the recurring fee through plan changes in the last 90 days (0: no change; "
        "null: a previous fee is unknown).",
        "price",
        "fee_change_90",
        window_days=90,
        reason="monthly fee changed by {value:+.2f} in the last 90 days",
    )
    b.add(
        "ownership_changes_90d",
        "Number of changes of the account holder in the last 90 days.",
        "contract_lifecycle",
        "owner_90",
        window_days=90,
        reason="account holder changed {value:.0f} times in the last 90 days",
    )
    for w in (30, 90):
        b.add(
            f"sim_swaps_{w}d",
            f"Number of SIM swaps in the last {w} days.",
            "contract_lifecycle",
            f"sim_swap_{w}",
            window_days=w,
            reason=f"{{value:.0f}} SIM swaps in the last {w} days",
        )
    b.add(
        "balance_transfer_out_amount_90d",
        "Credit moved from this line to other lines in the last 90 days.",
        "usage_decline",
        "bt_out_amount_90",
        window_days=90,
        reason="moved {value:.0f} of credit to other lines in the last 90 days",
    )
    b.add(
        "balance_transfer_in_amount_90d",
        "Credit received from other lines in the last 90 days.",
        "usage_decline",
        "bt_in_amount_90",
        window_days=90,
    )
    b.add(
        "balance_transfer_out_count_90d",
        "Number of credit transfers from this line to other lines in the last 90 days.",
        "usage_decline",
        "bt_out_n_90",
        window_days=90,
        reason="{value:.0f} credit transfers to other lines in the last 90 days",
    )
    b.add(
        "balance_transfer_net_out_90d",
        "Credit moved out minus credit received, last 90 days.",
        "usage_decline",
        "bt_out_amount_90 - bt_in_amount_90",
        window_days=90,
        reason="net {value:.0f} of credit moved to other lines in the last 90 days",
    )
    return b.defs


def build_sql(ctx, defs: list[FeatureDef]) -> str | None:
    if not defs:
        return None
    d = ctx.dialect
    params = ctx.params
    m = measures(params)
    used = list(dict.fromkeys(x for f in defs for x in f.measures))
    plan = [x for x in used if x in ("plan_down_90", "plan_up_90", "fee_change_90")]
    main = [x for x in used if x not in plan]
    hist = max(params.history_days, *params.windows, PLAN_WINDOW)
    cols = ctx.needed_columns("transfers", defs, "customer_id", "occurred_at", "kind")
    ctes = [f"t AS {ctx.scan('transfers', cols, ctx.time_range('occurred_at', hist))}"]
    joins = []
    age = d.seconds_between("t.occurred_at", "k.cutoff")
    # Port-out helper for the life-cycle "exit_risk" rule (query or request in 30 days).
    lc = "sum(CASE WHEN kind IN ('port_out_query', 'port_out_request') AND age_s <= 2592000"
    lc += " THEN 1 ELSE 0 END) AS _lc_port_out_30d"
    aggs = [f"{m[x].sql} AS {x}" for x in main] + [lc]
    ctes.append(
        f"ev AS (SELECT k.kid, {age} AS age_s"
        + "".join(f", t.{c}" for c in cols if c not in ("customer_id", "occurred_at"))
        + f" FROM t JOIN keys k ON {ctx.window_join('t', 'occurred_at', hist)})"
    )
    ctes.append(f"agg AS (SELECT kid, {', '.join(aggs)} FROM ev GROUP BY kid)")
    joins.append("agg")
    if plan:
        # Fee before each plan change: the customer's previous change, else the fee last seen
        # (anyone's change to that plan) before the event; both only look backwards in time.
        # Changes at the same instant are ordered by their values, so the row ids and the
        # previous fee are the same on every engine and every run (pcs is read twice).
        order = "occurred_at, to_plan_id, from_plan_id, monthly_fee"
        ctes.append(
            f"pcs AS {d.materialized()}(SELECT"
            f" row_number() OVER (ORDER BY customer_id, {order}) AS pid,"
            " customer_id, occurred_at, from_plan_id, to_plan_id, monthly_fee,"
            f" lag(monthly_fee) OVER (PARTITION BY customer_id ORDER BY {order}) AS prev_own"
            " FROM t WHERE kind = 'plan_change')"
        )
        ctes.append(
            f"lk AS (SELECT pid, is_set, {d.last_value_ignore_nulls('fee')} OVER (PARTITION BY plan"
            " ORDER BY occurred_at, is_set ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
            " AS plan_fee FROM (SELECT pid, to_plan_id AS plan, occurred_at, 1 AS is_set,"
            " monthly_fee AS fee FROM pcs UNION ALL SELECT pid, from_plan_id, occurred_at, 0,"
            " NULL FROM pcs))"
        )
        ctes.append(
            "pcd AS (SELECT pcs.customer_id, pcs.occurred_at,"
            " pcs.monthly_fee - coalesce(pcs.prev_own, lk.plan_fee) AS fee_delta"
            " FROM pcs JOIN lk ON lk.pid = pcs.pid AND lk.is_set = 0)"
        )
        ctes.append(
            "plan AS (SELECT k.kid,"
            " count(CASE WHEN fee_delta < 0 THEN 1 END) AS plan_down_90,"
            " count(CASE WHEN fee_delta > 0 THEN 1 END) AS plan_up_90,"
            " CASE WHEN count(fee_delta) < count(*) THEN NULL"
            f" ELSE {exact_sum('fee_delta')} END"
            " AS fee_change_90"
            f" FROM pcd JOIN keys k ON {ctx.window_join('pcd', 'occurred_at', PLAN_WINDOW)}"
            " GROUP BY k.kid)"
        )
        joins.append("plan")
    select = [f"{f.expr} AS {f.spec.name}" for f in defs] + ["_lc_port_out_30d"]
    join_sql = " ".join(f"LEFT JOIN {j} USING (kid)" for j in joins)
    return "WITH " + ",\n".join(ctes) + f"\nSELECT kid, {', '.join(select)} FROM keys {join_sql}"
