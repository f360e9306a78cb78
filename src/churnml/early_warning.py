"""Early warning, judged: did the scores flag the lost customers in time, and what was lost.

From the lost-customer table (`churnml.lost`): per exit month, the share of the month's lost
customers who were in the top risk decile (risk band R01) 30, 60 and 90 days before they left,
and the revenue lost by cause, value tier, region, plan and destination, with the share a
contact list covered. `render_report` turns it into one self-contained HTML page.
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
import pandas as pd

from churnml import contract
from churnml.explain import cause_label
from churnml.lost import TOP_DECILE

DIMENSIONS = {
    "main_cause": "Main cause",
    "last_value_tier": "Value tier",
    "region": "Region",
    "plan": "Plan",
    "destination_operator": "Destination operator",
    "exit_type": "Exit type",
}


def hit_rates(lost: pd.DataFrame, lookback_days: list[int], by: str = "exit_month") -> pd.DataFrame:
    """Per exit month (or per value of `by`): lost customers, and per lookback the customers
    judged (a score date existed that many days before the exit), flagged (risk band R01
    then) and the share.

    A customer the score date did not score (not yet eligible) is judged and not flagged: the
    warning missed them. Months with no score date that far back judge nobody (share empty).
    """
    rows = []
    keys = lost[by] if by == "exit_month" else lost[by].fillna("unknown")
    for key, group in lost.groupby(keys, sort=True):
        row: dict[str, object] = {
            by: pd.Timestamp(key).strftime("%Y-%m") if by == "exit_month" else key,
            "lost": len(group),
            "monthly_revenue_lost": float(group["monthly_revenue"].sum(min_count=1) or 0.0),
        }
        for days in lookback_days:
            judged = group[f"score_date_{days}d_before"].notna()
            flagged = judged & (group[f"risk_band_{days}d_before"] == TOP_DECILE)
            row[f"judged_{days}d"] = int(judged.sum())
            row[f"flagged_{days}d"] = int(flagged.sum())
            row[f"share_flagged_{days}d"] = (
                flagged.sum() / judged.sum() if judged.sum() else float("nan")
            )
        rows.append(row)
    return pd.DataFrame(rows)


def hit_rates_by(lost: pd.DataFrame, column: str, lookback_days: list[int]) -> pd.DataFrame:
    """The same shares over all months, per value of `column` (exit type, say)."""
    return hit_rates(lost, lookback_days, by=column)


# What an empty value means in each dimension.
MISSING_LABEL = {
    "main_cause": "not scored",
    "last_value_tier": "not scored",
    "destination_operator": "no port-out",
}


def revenue_lost(lost: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per value of `column`: lost customers, monthly revenue and lifetime value lost, and the
    part of the monthly revenue whose customers a contact list named before they left."""
    frame = lost.assign(
        _key=lost[column].fillna(MISSING_LABEL.get(column, "unknown")).astype(str),
        _covered=lost["monthly_revenue"].where(lost["on_contact_list"].astype(bool), 0.0),
    )
    grouped = frame.groupby("_key", sort=False)
    table = pd.DataFrame(
        {
            "lost": grouped.size(),
            "monthly_revenue_lost": grouped["monthly_revenue"].sum(),
            "lifetime_value_lost": grouped["lifetime_value_lost"].sum(),
            "monthly_revenue_covered": grouped["_covered"].sum(),
        }
    )
    table["share_covered"] = table["monthly_revenue_covered"] / table["monthly_revenue_lost"].where(
        table["monthly_revenue_lost"] > 0
    )
    table = table.sort_values("monthly_revenue_lost", ascending=False)
    return table.reset_index(names=column)


def summarize(lost: pd.DataFrame, lookback_days: list[int]) -> dict[str, float]:
    """Headline figures over every month (for MLflow and the report's card)."""
    out: dict[str, float] = {
        "lost_customers": float(len(lost)),
        "monthly_revenue_lost": float(lost["monthly_revenue"].sum()),
        "lifetime_value_lost": float(lost["lifetime_value_lost"].sum()),
    }
    revenue = lost["monthly_revenue"].sum()
    covered = lost["monthly_revenue"].where(lost["on_contact_list"].astype(bool), 0.0).sum()
    out["share_revenue_covered"] = float(covered / revenue) if revenue > 0 else float("nan")
    for days in lookback_days:
        judged = lost[f"score_date_{days}d_before"].notna()
        flagged = judged & (lost[f"risk_band_{days}d_before"] == TOP_DECILE)
        out[f"share_flagged_{days}d"] = (
            float(flagged.sum() / judged.sum()) if judged.sum() else float("nan")
        )
        out[f"judged_{days}d"] = float(judged.sum())
    return out


# -- the report ------------------------------------------------------------------------------
@dataclass
class EarlyWarningReport:
    """Everything the report shows, already computed."""

    title: str
    card: dict[str, str]
    lookback_days: list[int]
    by_month: pd.DataFrame
    by_exit_type: pd.DataFrame
    revenue: dict[str, pd.DataFrame]
    currency: str = ""
    notes: list[str] = field(default_factory=list)
    winback_card: dict[str, str] = field(default_factory=dict)
    winback_top: pd.DataFrame | None = None


def plot_hit_rates(by_month: pd.DataFrame, lookback_days: list[int]) -> plt.Figure:
    """Share of each month's lost customers flagged (R01) at each lookback."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    positions = range(len(by_month))  # month labels are text: no date parsing by matplotlib
    for days in lookback_days:
        ax.plot(
            positions,
            by_month[f"share_flagged_{days}d"] * 100,
            marker="o",
            label=f"{days} days before",
        )
    ax.set_xticks(list(positions), by_month["exit_month"].astype(str).tolist())
    ax.set(ylabel="lost customers in the top risk decile (%)", ylim=(0, 100))
    ax.axhline(10, color="grey", linewidth=0.8, linestyle="--")
    ax.text(0, 11, "chance (10 %)", color="grey", fontsize=8)
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", rotation=60, labelsize=8)
    fig.tight_layout()
    return fig


def plot_revenue_lost(table: pd.DataFrame, column: str, label: str) -> plt.Figure:
    """Monthly revenue lost per value of a dimension, with the part the contact list covered."""
    data = table.head(12).iloc[::-1]
    names = [_label(column, v) for v in data[column]]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(data) + 1.3))
    ax.barh(names, data["monthly_revenue_lost"], color="#c0504d", label="lost")
    ax.barh(names, data["monthly_revenue_covered"], color="#3b6ea8", label="on a contact list")
    ax.set(xlabel="monthly revenue lost", title=f"Revenue lost by {label.lower()}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _label(column: str, value: object) -> str:
    if column == "main_cause" and value in contract.CAUSE_FAMILIES:
        return cause_label(str(value))
    return str(value)


def _embed(fig: plt.Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _table(frame: pd.DataFrame, formats: dict[str, str], classes: str = "table") -> str:
    shown = frame.copy()
    for column, fmt in formats.items():
        if column in shown:
            shown[column] = shown[column].map(lambda v, f=fmt: "" if pd.isna(v) else f.format(v))
    return shown.to_html(index=False, border=0, classes=classes, escape=True, na_rep="")


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#222;line-height:1.45}
h1{font-size:1.6rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
.card{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:.3rem 1.5rem;
background:#f6f8fa;padding:1rem;border-radius:6px}.card div span{color:#666}
table.table{border-collapse:collapse;font-size:.88rem;margin:.6rem 0}
table.table th,table.table td{padding:.25rem .6rem;border-bottom:1px solid #eee;text-align:left}
img{max-width:100%}.primer{background:#fffbe6;border-left:4px solid #e0b000;padding:.6rem 1rem;
font-size:.92rem}ul.notes li{margin:.3rem 0}table.table td{vertical-align:top}
table.winback td:last-child{min-width:16rem}
"""


def _card(items: dict[str, str]) -> str:
    cells = "".join(
        f"<div><span>{html.escape(k)}</span><br><b>{html.escape(str(v))}</b></div>"
        for k, v in items.items()
    )
    return f'<div class="card">{cells}</div>'


def _primer(lookback_days: list[int], currency: str) -> str:
    days = ", ".join(str(d) for d in lookback_days)
    money = (
        f" Money is in {html.escape(currency)} a month unless said otherwise." if currency else ""
    )
    return (
        '<div class="primer"><b>How to read this report.</b> Every subscription that ended is '
        "counted once, in the month it ended. <i>Flagged</i> means the customer was in the top "
        f"risk decile (band R01, the riskiest 10 % of that day's scores) {days} days before "
        "leaving; a list drawn at random would flag about 10 %. <i>Judged</i> counts the lost "
        "customers for whom scores of that day exist: a customer those scores did not include "
        "(too new to score) counts as missed. <i>Covered</i> is the revenue of customers a "
        "contact list named in the days before they left: what the retention team had a "
        f"chance to save.{money}</div>"
    )


def render_report(report: EarlyWarningReport) -> str:
    """The whole report as one HTML string (no external resources; every value escaped)."""
    money = f" ({report.currency})" if report.currency else ""
    share_formats = {f"share_flagged_{d}d": "{:.0%}" for d in report.lookback_days}
    count_formats = {"monthly_revenue_lost": "{:,.0f}"}
    sections = [
        f"<h1>{html.escape(report.title)}</h1>",
        _card(report.card),
        _primer(report.lookback_days, report.currency),
        "<h2>Did we see them coming?</h2>",
        "<p>Per month of exit: the lost customers, and the share that were in the top risk "
        "decile before they left.</p>",
        _embed(plot_hit_rates(report.by_month, report.lookback_days))
        if not report.by_month.empty
        else "<p>No lost customers.</p>",
        _table(report.by_month, {**share_formats, **count_formats}),
        "<h2>By exit type</h2>",
        "<p>The churn model is trained on the exits its label counts (voluntary and port-out by "
        "default): non-payment and silence are judged here too, but are not what it was asked "
        "to foresee.</p>",
        _table(report.by_exit_type, {**share_formats, **count_formats}),
        "<h2>What was lost</h2>",
    ]
    for column, table in report.revenue.items():
        label = DIMENSIONS.get(column, column)
        shown = table.assign(**{column: [_label(column, v) for v in table[column]]})
        sections += [
            f"<h3>By {html.escape(label.lower())}</h3>",
            _embed(plot_revenue_lost(table, column, label)) if not table.empty else "",
            _table(
                shown.rename(columns={column: label}),
                {
                    "monthly_revenue_lost": "{:,.0f}",
                    "lifetime_value_lost": "{:,.0f}",
                    "monthly_revenue_covered": "{:,.0f}",
                    "share_covered": "{:.0%}",
                },
            ),
        ]
    sections.append("<h2>Win-back</h2>")
    if report.winback_card:
        sections.append(_card(report.winback_card))
    if report.winback_top is not None and not report.winback_top.empty:
        sections += [
            "<p>The first customers of the win-back list: the probability they come back "
            f"within the horizon, times the value of their return{html.escape(money)}.</p>",
            _table(
                report.winback_top,
                classes="table winback",
                formats={
                    "p_return": "{:.0%}",
                    "monthly_revenue": "{:,.2f}",
                    "expected_value": "{:,.0f}",
                    "months_since_exit": "{:.1f}",
                },
            ),
        ]
    elif not report.winback_card:
        sections.append("<p>No win-back list at this date.</p>")
    if report.notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in report.notes)
        sections += ["<h2>Where the figures come from</h2>", f'<ul class="notes">{items}</ul>']
    sections.append(
        f"<p><small>Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by churnml.</small></p>"
    )
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(report.title)}</title><style>{_STYLE}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )
