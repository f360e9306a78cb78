"""Complaints: counts by category and window, open tickets, repeats, resolution time, severity,
low satisfaction, regulator escalations and recency (`complaints`)."""

from __future__ import annotations

from churnml.features.params import FeatureParams
from churnml.features.registry import (
    FamilyBuilder,
    FeatureDef,
    Measure,
    cond_sum,
    exact_sum,
    within,
)

FAMILY = "complaints"
REQUIRED_TABLES = ("complaints",)
CATEGORIES = {
    "billing": "billing_arrears",
    "network": "network_quality",
    "service": "service_complaints",
    "price": "price",
    "product": "service_complaints",
    "other": "service_complaints",
}
_BASE = ("complaints.customer_id", "complaints.opened_at")
_CAT = (*_BASE, "complaints.category")
_RES = (*_BASE, "complaints.resolved_at")
# A resolution (and the survey after it) is known only once it happened before the cutoff.
RESOLVED = "resolved_at IS NOT NULL AND resolved_at < cutoff"
# Seconds to resolution of the complaints resolved in the last 90 days (their mean is summed
# exactly: registry.exact_sum).
_RES_90 = f"CASE WHEN {RESOLVED} AND res_age_s <= {90 * 86400} THEN res_s END"


def measures(params: FeatureParams) -> dict[str, Measure]:
    m: dict[str, Measure] = {}
    for w in sorted(set(params.windows) | {90}):
        m[f"n_{w}"] = Measure(cond_sum(within(w)), _BASE)
    for w in sorted(set(params.complaint_category_windows) | {90}):
        for cat in CATEGORIES:
            m[f"cat_{cat}_{w}"] = Measure(cond_sum(f"category = '{cat}' AND {within(w)}"), _CAT)
    m["open_now"] = Measure(cond_sum(f"NOT ({RESOLVED})"), _RES)
    m["res_days_mean_90"] = Measure(
        f"{exact_sum(_RES_90)} / nullif(count({_RES_90}), 0) / 86400.0", _RES
    )
    m["max_sev_90"] = Measure(
        f"max(CASE WHEN {within(90)} THEN severity END)", (*_BASE, "complaints.severity")
    )
    m["low_sat_90"] = Measure(
        cond_sum(f"{within(90)} AND {RESOLVED} AND satisfaction <= {params.low_satisfaction_max}"),
        (*_RES, "complaints.satisfaction"),
    )
    m["regulator_90"] = Measure(
        cond_sum(f"{within(90)} AND channel = 'regulator'"), (*_BASE, "complaints.channel")
    )
    m["last_s"] = Measure("min(age_s)", _BASE)
    return m


def definitions(params: FeatureParams) -> list[FeatureDef]:
    b = FamilyBuilder(FAMILY, "complaints", measures(params))
    for w in params.windows:
        b.add(
            f"complaints_{w}d",
            f"Number of complaints opened in the last {w} days.",
            "service_complaints",
            f"n_{w}",
            window_days=w,
            reason=f"{{value:.0f}} complaints in the last {w} days",
        )
    for w in params.complaint_category_windows:
        for cat, cause in CATEGORIES.items():
            b.add(
                f"complaints_{cat}_{w}d",
                f"Number of {cat} complaints opened in the last {w} days.",
                cause,
                f"cat_{cat}_{w}",
                window_days=w,
                reason=f"{{value:.0f}} {cat} complaints in the last {w} days",
            )
    b.add(
        "complaints_unresolved",
        f"Complaints opened before the cutoff (last {params.history_days} days) and not resolved "
        "before it.",
        "service_complaints",
        "open_now",
        reason="{value:.0f} complaints still open",
    )
    repeat = (
        "n_90 - ("
        + " + ".join(f"CASE WHEN cat_{c}_90 > 0 THEN 1 ELSE 0 END" for c in CATEGORIES)
        + ")"
    )
    b.add(
        "repeat_complaints_90d",
        "Complaints in the last 90 days about a category already complained about in that window.",
        "service_complaints",
        repeat,
        window_days=90,
        reason="complained {value:.0f} times again about the same issue in 90 days",
    )
    b.add(
        "complaint_resolution_days_mean_90d",
        "Mean days from opening to resolution of complaints resolved in the last 90 days.",
        "service_complaints",
        "res_days_mean_90",
        window_days=90,
        fill=None,
        reason="complaints took {value:.0f} days on average to resolve",
    )
    b.add(
        "complaint_max_severity_90d",
        "Highest severity (1 low to 3 high) of complaints opened in the last 90 days (0: none).",
        "service_complaints",
        "coalesce(max_sev_90, 0)",
        window_days=90,
        reason="a complaint of severity {value:.0f} in the last 90 days",
    )
    b.add(
        "low_satisfaction_complaints_90d",
        f"Complaints of the last 90 days resolved with a survey score of "
        f"{params.low_satisfaction_max} or less (of 5).",
        "service_complaints",
        "low_sat_90",
        window_days=90,
        reason="{value:.0f} complaints closed with a poor satisfaction score",
    )
    b.add(
        "regulator_escalations_90d",
        "Complaints filed through the regulator in the last 90 days.",
        "service_complaints",
        "regulator_90",
        window_days=90,
        reason="{value:.0f} complaints escalated to the regulator in the last 90 days",
    )
    b.add(
        "days_since_last_complaint",
        f"Days since the last complaint was opened (null: none in {params.history_days} days).",
        "service_complaints",
        "last_s / 86400.0",
        fill=None,
        reason="last complaint {value:.0f} days ago",
    )
    return b.defs


def build_sql(ctx, defs: list[FeatureDef]) -> str | None:
    if not defs:
        return None
    d = ctx.dialect
    params = ctx.params
    m = measures(params)
    used = list(dict.fromkeys(x for f in defs for x in f.measures))
    hist = max(params.history_days, *params.windows, 90)
    cols = ctx.needed_columns("complaints", defs, "customer_id", "opened_at")
    scan = ctx.scan("complaints", cols, ctx.time_range("opened_at", hist))
    extra = ""
    if "resolved_at" in cols:
        extra = (
            f", {d.seconds_between('c.resolved_at', 'k.cutoff')} AS res_age_s,"
            f" {d.seconds_between('c.opened_at', 'c.resolved_at')} AS res_s"
        )
    ev = (
        f"ev AS (SELECT k.kid, k.cutoff, {d.seconds_between('c.opened_at', 'k.cutoff')}"
        f" AS age_s{extra}"
        + "".join(f", c.{c}" for c in cols if c not in ("customer_id", "opened_at"))
        + f" FROM {scan} c JOIN keys k ON {ctx.window_join('c', 'opened_at', hist)})"
    )
    aggs = ", ".join(f"{m[x].sql} AS {x}" for x in used)
    select = ", ".join(f"{f.expr} AS {f.spec.name}" for f in defs)
    return (
        f"WITH {ev},\nagg AS (SELECT kid, {aggs} FROM ev GROUP BY kid)\n"
        f"SELECT kid, {select} FROM agg"
    )
