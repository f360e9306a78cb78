"""The loss-driver report: one self-contained HTML file (plots embedded) for retention analysts.

Computation lives in `explain.py`; this module only draws (`plot_*`) and assembles HTML.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import shap

from churnml.explain import Contributions, cause_label, describe_feature, feature_label


@dataclass
class ReportInputs:
    """Everything the report shows, already computed."""

    title: str
    model_card: dict[str, str]
    metrics: dict[str, float]
    drivers: pd.DataFrame
    families: pd.DataFrame
    findings: pd.DataFrame
    segments: pd.DataFrame
    change: pd.DataFrame | None = None
    figures: dict[str, plt.Figure] = field(default_factory=dict)
    # Per main cause: customers, revenue at risk, actions, calls (scoring.retention_plan).
    plan: pd.DataFrame | None = None
    currency: str = ""
    horizon_days: int | None = None
    contact_capacity: float | None = None
    # The time-to-churn section's HTML (churnml.hazard_report), when a hazard model exists.
    time_to_churn: str | None = None


def plot_driver_bar(drivers: pd.DataFrame, top_n: int) -> plt.Figure:
    top = drivers.head(top_n).iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(top) + 1.2))
    ax.barh([feature_label(f)[:60] for f in top["feature"]], top["mean_abs_shap"], color="#3b6ea8")
    ax.set(xlabel="mean |SHAP| (log-odds): how much it moves scores", title="Top loss drivers")
    fig.tight_layout()
    return fig


def plot_family_bar(families: pd.DataFrame) -> plt.Figure:
    """Causes by the share of customers whose first reason they are (else by mean |SHAP|)."""
    data = families.iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(data) + 1.2))
    if "share_of_top_reasons" in data and data["share_of_top_reasons"].notna().any():
        ax.barh(data["cause"], data["share_of_top_reasons"] * 100, color="#c0504d")
        ax.set(xlabel="customers whose first reason is this cause (%)", title="Main causes")
    else:
        ax.barh(data["cause"], data["share_of_total"] * 100, color="#c0504d")
        ax.set(xlabel="share of the causes' mean |summed SHAP| (%)", title="Loss drivers by cause")
    fig.tight_layout()
    return fig


def plot_beeswarm(contrib: Contributions, top_n: int) -> plt.Figure:
    """SHAP's beeswarm; categorical features are coloured by their level code."""
    data = contrib.features.copy()
    for column in data.columns:
        if isinstance(data[column].dtype, pd.CategoricalDtype):
            data[column] = data[column].cat.codes.replace(-1, np.nan)
    explanation = shap.Explanation(
        values=contrib.values.to_numpy(),
        base_values=np.full(len(data), contrib.base_value),
        data=data.to_numpy(dtype=float),
        feature_names=list(data.columns),
    )
    plt.figure(figsize=(9, 0.35 * top_n + 1.5))
    shap.plots.beeswarm(explanation, max_display=top_n, show=False)
    fig = plt.gcf()
    fig.tight_layout()
    return fig


def plot_dependence(contrib: Contributions, feature: str) -> plt.Figure:
    values = contrib.features[feature]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    if isinstance(values.dtype, pd.CategoricalDtype):
        frame = pd.DataFrame({"level": values.astype(str), "shap": contrib.values[feature]})
        frame.boxplot(column="shap", by="level", ax=ax, rot=45)
        fig.suptitle("")
    else:
        ax.scatter(values, contrib.values[feature], s=4, alpha=0.3)
        ax.set_xlabel(feature)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set(ylabel="SHAP (log-odds)", title=describe_feature(feature)[:70])
    fig.tight_layout()
    return fig


def _embed(fig: plt.Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _table(frame: pd.DataFrame, formats: dict[str, str] | None = None) -> str:
    formats = formats or {}
    shown = frame.copy()
    for column, fmt in formats.items():
        if column in shown:
            shown[column] = shown[column].map(lambda v, f=fmt: "" if pd.isna(v) else f.format(v))
    return shown.to_html(index=False, border=0, classes="table", escape=True, na_rep="")


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#222;line-height:1.45}
h1{font-size:1.6rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
.card{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:.3rem 1.5rem;
background:#f6f8fa;padding:1rem;border-radius:6px}
.card div span{color:#666}
table.table{border-collapse:collapse;font-size:.88rem;margin:.6rem 0}
table.table th,table.table td{padding:.25rem .6rem;border-bottom:1px solid #eee;text-align:left}
ul.findings li{margin:.35rem 0}img{max-width:100%}.plots{display:flex;flex-wrap:wrap;gap:1rem}
.primer{background:#fffbe6;border-left:4px solid #e0b000;padding:.6rem 1rem;font-size:.92rem}
"""


def _primer(currency: str, horizon_days: int | None) -> str:
    """How to read contributions, in five sentences (for analysts new to SHAP)."""
    horizon = f"within {horizon_days} days" if horizon_days else "within the label horizon"
    money = f" Money is in {html.escape(currency)}." if currency else ""
    return (
        '<div class="primer"><b>How to read this report.</b> The model gives each customer a '
        f"churn probability: the chance of leaving {horizon} (calibrated: of 100 customers at "
        "0.30, about 30 leave). SHAP splits each customer's score into one contribution per "
        "feature, in log-odds (the model's own scale, where contributions add up): positive "
        "raises that customer's risk, negative lowers it. <i>Mean |SHAP|</i> is how much a "
        "feature moves scores on average, either way; it ranks features, it is not a "
        "probability. A customer's <i>main cause</i> is the cause family of their first "
        "reason (their largest risk-raising contribution that is a fact worth telling); causes "
        "are compared by the share of customers whose main cause they are, which does not grow "
        "with the number of features a cause has. Contributions describe what the model "
        "learned, not proven causes: each finding gives the churn rates actually seen in the "
        f"test data.{money}</div>"
    )


def _plan_section(inputs: ReportInputs) -> str:
    """What to do: per main cause, who is at risk, what it is worth, the action and the calls."""
    plan = inputs.plan
    if plan is None or plan.empty:
        return "<p>No playbook given: run with a scoring config to see actions per cause.</p>"
    currency = inputs.currency
    capacity = ""
    if inputs.contact_capacity is not None:
        calls = inputs.contact_capacity * plan["customers"].sum()
        capacity = (
            f" The contact capacity is {inputs.contact_capacity:.0%} of the base: about "
            f"{calls:,.0f} calls; the share of it each cause would take is given per cause."
        )
    lines = []
    for row in plan.itertuples():
        if row.cause_family == "none":
            continue
        lines.append(
            f"<li><b>{html.escape(row.cause)}</b>: {row.customers:,.0f} customers "
            f"({row.share_of_base:.1%}) have it as their main cause; about "
            f"{row.expected_churners:,.0f} of them "
            f"{'is' if round(row.expected_churners) == 1 else 'are'} expected to leave, "
            f"{html.escape(currency)} {row.revenue_at_risk:,.0f} of revenue at risk. "
            f"Do: {html.escape(row.actions or 'nothing in the playbook')}. "
            f"Calls worth making: {row.calls_worth_making:,.0f} "
            f"({row.share_of_capacity:.0%} of the contact capacity).</li>"
        )
    shown = plan.drop(columns=["cause_family"]).rename(
        columns={
            "revenue_at_risk": f"revenue_at_risk ({currency})" if currency else "revenue_at_risk"
        }
    )
    money = f"revenue_at_risk ({currency})" if currency else "revenue_at_risk"
    return (
        "<p>Per main cause, for the test cutoff (sample scaled to all its customers): how many "
        "customers, how many are expected to churn (sum of probabilities), the revenue at risk "
        "over the horizon (probability x monthly revenue x months), the playbook's actions "
        f"(customers each), and the calls with a positive expected profit.{capacity}</p>"
        f'<ul class="findings">{"".join(lines)}</ul>'
        + _table(
            shown,
            {
                "customers": "{:,.0f}",
                "share_of_base": "{:.1%}",
                "expected_churners": "{:,.0f}",
                money: "{:,.0f}",
                "calls_worth_making": "{:,.0f}",
                "share_of_capacity": "{:.0%}",
            },
        )
    )


def render_report(inputs: ReportInputs) -> str:
    """The whole report as one HTML string (no external resources, opens offline)."""
    card = "".join(
        f"<div><span>{html.escape(k)}</span><br><b>{html.escape(str(v))}</b></div>"
        for k, v in inputs.model_card.items()
    )
    metric_rows = pd.DataFrame(
        [{"metric": k, "value": v} for k, v in sorted(inputs.metrics.items())]
    )
    findings = (
        "".join(
            f"<li><b>{html.escape(cause_label(row.cause_family))}</b>: "
            f"{html.escape(row.finding)}</li>"
            for row in inputs.findings.itertuples()
        )
        or "<li>No driver splits the base into groups with different churn rates.</li>"
    )
    figures = {name: _embed(fig) for name, fig in inputs.figures.items()}
    dependence = "".join(v for k, v in figures.items() if k.startswith("dependence_"))
    change = (
        _table(
            inputs.change,
            {"share_now": "{:.1%}", "share_champion": "{:.1%}", "change_points": "{:+.1f}"},
        )
        if inputs.change is not None and not inputs.change.empty
        else "<p>No champion report to compare with (this is the first model).</p>"
    )
    families = inputs.families.copy()
    sections = [
        f"<h1>{html.escape(inputs.title)}</h1>",
        f'<div class="card">{card}</div>',
        _primer(inputs.currency, inputs.horizon_days),
        "<h2>What drives customers away</h2>",
        "<p>One line per top driver: the group where it raises risk that churns most often "
        "compared with the rest, with thresholds rounded and in the feature's unit.</p>",
        f'<ul class="findings">{findings}</ul>',
        "<h2>What to do</h2>",
        _plan_section(inputs),
        *(
            ["<h2>Time to churn and lifetime value</h2>", inputs.time_to_churn]
            if inputs.time_to_churn
            else []
        ),
        "<h2>Drivers by cause</h2>",
        "<p><i>share of top reasons</i>: customers whose first reason belongs to the cause. "
        "<i>mean |SHAP|</i>: the mean size of the cause's summed contribution per customer "
        "(log-odds). Neither grows with the number of features in a cause.</p>",
        figures.get("families", ""),
        _table(
            families.drop(columns=["cause_family"]),
            {
                "share_of_top_reasons": "{:.1%}",
                "mean_abs_shap": "{:.3f}",
                "share_of_total": "{:.1%}",
            },
        ),
        "<h2>Top drivers</h2>",
        f'<div class="plots">{figures.get("bar", "")}{figures.get("beeswarm", "")}</div>',
        _table(
            inputs.drivers.head(25).assign(
                cause=[cause_label(f) for f in inputs.drivers.head(25)["cause_family"]]
            )[
                [
                    "rank",
                    "feature",
                    "description",
                    "cause",
                    "mean_abs_shap",
                    "share_raising_risk",
                ]
            ],
            {"mean_abs_shap": "{:.3f}", "share_raising_risk": "{:.0%}"},
        ),
        "<h2>How the top drivers act</h2>",
        f'<div class="plots">{dependence}</div>',
        "<h2>Segments</h2>",
        "<p>Per segment: its size and churn rate in the test cutoff, its most common main cause "
        "(and the share of its customers who have it), and the drivers with the largest mean "
        "|SHAP| inside it.</p>",
        _table(
            inputs.segments,
            {"churn_rate": "{:.1%}", "share_of_base": "{:.1%}", "top_cause_share": "{:.0%}"},
        ),
        "<h2>Change since the champion</h2>",
        change,
        "<h2>Model quality</h2>",
        _table(metric_rows, {"value": "{:.4f}"}),
        f"<p><small>Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by churnml.</small></p>",
    ]
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(inputs.title)}</title><style>{_STYLE}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )
