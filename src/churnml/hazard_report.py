"""The loss-driver report's time-to-churn section: survival curves, lifetime value by segment,
revenue expected to be lost over the span by cause, and the valuable customers at risk."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from churnml.config import TrainConfig
from churnml.explain import cause_label
from churnml.hazard import HazardModel
from churnml.hazard_eval import plot_curves_by
from churnml.hazard_job import SEGMENTS, _revenue, _tiers, time_to_churn_columns
from churnml.report import _embed, _table

TOP_AT_RISK = 15


def section_tables(
    model: HazardModel,
    rows: pd.DataFrame,
    main_causes: pd.Series,
    cfg: TrainConfig,
    scale: float = 1.0,
) -> tuple[np.ndarray, pd.DataFrame, dict[str, pd.DataFrame]]:
    """The curves of the report's rows, their time-to-churn columns and the section's tables.

    `scale` turns the (weighted) sample into the whole cutoff's population.
    """
    cuts = cfg.features.value_tier_cuts
    survival = model.survival(rows)
    revenue = _revenue(rows, cfg.scoring.revenue_feature)
    tiers = _tiers(rows, revenue, cuts)
    ids = rows["customer_id"].astype(str).to_numpy()
    columns = time_to_churn_columns(survival, revenue, tiers, ids, cfg.hazard, cuts)
    weight = (rows["weight"].to_numpy(float) if "weight" in rows else np.ones(len(rows))) * scale
    months = survival.shape[1]
    lost = np.nan_to_num(revenue) * (1.0 - survival).sum(axis=1)  # revenue months not paid
    frame = columns.assign(
        customer_id=ids,
        value_tier=tiers,
        monthly_revenue=revenue,
        main_cause=main_causes.fillna("none").astype(str).to_numpy(),
        revenue_lost=lost,
        _w=weight,
    )
    last = f"churn_probability_{max(cfg.hazard.horizons_days)}d"
    segments = (
        frame.groupby("value_segment")
        .apply(
            lambda g: pd.Series(
                {
                    "customers": g["_w"].sum(),
                    "mean_monthly_revenue": np.average(
                        np.nan_to_num(g["monthly_revenue"]), weights=g["_w"]
                    ),
                    "mean_lifetime_value": np.average(g["lifetime_value"], weights=g["_w"]),
                    "total_lifetime_value": (g["lifetime_value"] * g["_w"]).sum(),
                    f"mean_{last}": np.average(g[last], weights=g["_w"]),
                    "mean_expected_remaining_months": np.average(
                        g["expected_remaining_months"], weights=g["_w"]
                    ),
                }
            ),
            include_groups=False,
        )
        .reindex([s for s in SEGMENTS.values() if s in set(frame["value_segment"])])
        .reset_index()
    )
    causes = (
        frame.assign(_lost=frame["revenue_lost"] * frame["_w"])
        .groupby("main_cause")
        .agg(customers=("_w", "sum"), revenue_lost=("_lost", "sum"))
        .sort_values("revenue_lost", ascending=False)
        .reset_index()
    )
    causes.insert(
        1,
        "cause",
        [cause_label(c) if c != "none" else "no risk-raising reason" for c in causes["main_cause"]],
    )
    causes = causes.drop(columns="main_cause").rename(
        columns={"revenue_lost": f"revenue_lost_{months}m"}
    )
    high = frame["lifetime_value_tier"].isin(cfg.hazard.high_tiers)
    at_risk = (
        frame[high]
        .sort_values("lifetime_value_at_risk", ascending=False)
        .head(TOP_AT_RISK)
        .assign(
            main_cause=lambda f: [cause_label(c) if c != "none" else "" for c in f["main_cause"]]
        )
    )
    probability = next(
        (f"churn_probability_{d}d" for d in sorted(cfg.hazard.horizons_days) if d >= 90),
        f"churn_probability_{max(cfg.hazard.horizons_days)}d",
    )
    at_risk = at_risk[
        [
            "customer_id",
            "value_tier",
            "value_segment",
            "monthly_revenue",
            "lifetime_value",
            "lifetime_value_at_risk",
            probability,
            "expected_remaining_months",
            "main_cause",
        ]
    ]
    return survival, frame, {"segments": segments, "causes": causes, "at_risk": at_risk}


def report_section(
    model: HazardModel,
    rows: pd.DataFrame,
    main_causes: pd.Series,
    cfg: TrainConfig,
    scale: float = 1.0,
) -> tuple[str, dict[str, pd.DataFrame]]:
    """The section's HTML (plots embedded) and its tables (logged with the run)."""
    survival, frame, tables = section_tables(model, rows, main_causes, cfg, scale)
    months = survival.shape[1]
    currency = html.escape(cfg.data.currency)
    plots = []
    for column, label in (("value_tier", "value tier"), ("lifecycle_stage", "life-cycle stage")):
        groups = frame[column] if column in frame else rows.get(column)
        if groups is not None:
            plots.append(
                _embed(
                    plot_curves_by(
                        survival,
                        pd.Series(np.asarray(groups)),
                        f"Still a customer, by {label}",
                    )
                )
            )
    h = cfg.hazard
    money = {c: "{:,.0f}" for c in ("total_lifetime_value", f"revenue_lost_{months}m")}
    money.update({c: "{:,.2f}" for c in ("mean_monthly_revenue", "mean_lifetime_value")})
    last = f"mean_churn_probability_{max(h.horizons_days)}d"
    body = [
        f"<p>From the time-to-churn model: each customer's chance of still being a customer "
        f"month by month over the next {months} months (S(t)), the lifetime value over that "
        f"span (monthly revenue x margin {h.margin_rate:.0%} x S(t), discounted at "
        f"{h.annual_discount_rate:.0%} a year; {currency}), and the value segment: current value "
        f"tier x lifetime-value tier, high meaning tier {', '.join(h.high_tiers)}. "
        "<i>keep and grow</i>: valuable now and expected to stay; <i>protect</i>: valuable now, "
        "but expected to leave, so their value is at stake; <i>develop</i>: modest now, but "
        "expected to stay long enough to be worth growing; <i>let go</i>: serve at low cost.</p>",
        f'<div class="plots">{"".join(plots)}</div>',
        "<h3>Lifetime value by segment</h3>",
        _table(
            tables["segments"],
            {
                **money,
                "customers": "{:,.0f}",
                last: "{:.1%}",
                "mean_expected_remaining_months": "{:.1f}",
            },
        ),
        f"<h3>Revenue expected to be lost over {months} months, by main cause</h3>",
        "<p>Per customer, monthly revenue x the months not paid if the curve holds "
        "(sum of 1 - S(t)); grouped by the churn model's main cause of the customer.</p>",
        _table(tables["causes"], {**money, "customers": "{:,.0f}"}),
        "<h3>Valuable customers at risk</h3>",
        f"<p>The {TOP_AT_RISK} customers of the high lifetime-value tiers with the most lifetime "
        "value at risk (what they would bring if certain to stay, minus their lifetime value).</p>",
        _table(
            tables["at_risk"],
            {
                "monthly_revenue": "{:,.2f}",
                "lifetime_value": "{:,.2f}",
                "lifetime_value_at_risk": "{:,.2f}",
                "expected_remaining_months": "{:.1f}",
                **{c: "{:.1%}" for c in tables["at_risk"].columns if c.startswith("churn_prob")},
            },
        ),
    ]
    return "\n".join(body), tables
