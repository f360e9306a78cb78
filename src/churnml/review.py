"""The three-month review of retention campaigns: did contacting customers change who churned?

Every campaign in the contract's optional `campaigns` table is compared with its own
randomized control group: churn within 1, 2 and 3 months of assignment (a voluntary exit,
`label.reasons`), treatment against control by assignment (intention to treat: every
treatment customer counts, reached or not) and per contact (the difference divided by the
treatment's contact rate: control customers are never contacted). Each difference carries a
confidence interval (Agresti-Caffo: one churner and one stayer added to each group, which
keeps small groups honest). Pooled rows (all campaigns, or one offer, channel, value tier or
cause across campaigns) add up per-campaign differences weighted by campaign size, so
campaigns with different control shares never mix their base rates.

Verdicts say it plainly: "raised churn" (the whole interval above zero), "lowered churn",
"no effect found" (the interval spans zero though the groups could have seen an effect of
`review.min_effect`), "too small to tell" (too few customers in a group, or an interval too
wide to see such an effect).

Pure functions here; `run_review` reads, logs to MLflow and writes the report.
"""

from __future__ import annotations

import html
import json
import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.stats import norm

from churnml.explain import cause_label
from churnml.features import FeatureParams, build_features
from churnml.io import dataset_as_of, read_table, require_dataset, write_atomic
from churnml.report import _STYLE, _embed, _table
from churnml.sampling import eligible_customers

log = logging.getLogger(__name__)

CAMPAIGNS_TABLE = "campaigns"
CAMPAIGNS_TRUTH_FILE = Path("truth") / "campaigns.json"
GROUPS = ("treatment", "control")
RAISED, LOWERED, NO_EFFECT, TOO_SMALL = (
    "raised churn",
    "lowered churn",
    "no effect found",
    "too small to tell",
)
NOT_YET = "follow-up not complete"
MONTHS_OF_REVENUE, LIFETIME_VALUE = "months_of_revenue", "lifetime_value"
POWER_Z = norm.ppf(0.8)  # 80 % power for the detectable effect


def read_campaigns(dataset_dir: str | Path) -> pd.DataFrame | None:
    """The campaigns table with contract types, or None when the dataset has none."""
    frame = read_table(dataset_dir, CAMPAIGNS_TABLE)
    if frame is None:
        return None
    out = frame.copy()
    for column in ("campaign_id", "customer_id", "group", "channel", "offer"):
        if column in out:
            out[column] = out[column].astype(object).where(out[column].notna(), None)
    for column in ("assigned_at", "contacted_at"):
        if column in out:
            out[column] = pd.to_datetime(out[column])
    if "offer_cost" in out:
        out["offer_cost"] = pd.to_numeric(out["offer_cost"], errors="coerce")
    if "accepted" in out:
        out["accepted"] = out["accepted"].astype("boolean")
    return out


def campaign_outcomes(
    campaigns: pd.DataFrame,
    customers: pd.DataFrame,
    as_of: pd.Timestamp,
    reasons: list[str] | tuple[str, ...],
    months: list[int] | tuple[int, ...],
) -> pd.DataFrame:
    """Per campaign row: `churned_<k>m` (1.0 left for a counted reason within k months of
    assignment, 0.0 stayed or left otherwise, NaN when k months have not passed by `as_of`)
    and `contacted`."""
    ends = customers.set_index(customers["customer_id"].astype(str))
    ids = campaigns["customer_id"].astype(str)
    terminated = pd.to_datetime(ends["terminated_at"].reindex(ids).to_numpy())
    counted = ends["termination_reason"].reindex(ids).isin(list(reasons)).to_numpy()
    assigned = pd.to_datetime(campaigns["assigned_at"]).to_numpy()
    out = campaigns.copy()
    out["contacted"] = (
        campaigns["contacted_at"].notna().to_numpy()
        & (campaigns["group"] == "treatment").to_numpy()
    )
    for k in months:
        end = (pd.to_datetime(campaigns["assigned_at"]) + pd.DateOffset(months=k)).to_numpy()
        left = counted & (terminated > assigned) & (terminated <= end)
        out[f"churned_{k}m"] = np.where(end <= np.datetime64(as_of), left.astype(float), np.nan)
    return out


def customer_context(
    dataset_dir: str | Path, campaigns: pd.DataFrame, params: FeatureParams
) -> pd.DataFrame:
    """Monthly revenue and value tier of each campaign customer at the campaign's date, the
    tier ranked among every eligible customer of that date (as scoring ranks it)."""
    customers = read_table(
        dataset_dir, "customers", ["customer_id", "activated_at", "terminated_at"]
    )
    dates = pd.to_datetime(campaigns["assigned_at"]).dt.normalize().drop_duplicates()
    spine = []
    for date in sorted(dates):
        keep = eligible_customers(customers, date, 0)
        spine.append(
            pd.DataFrame(
                {"customer_id": customers.loc[keep, "customer_id"].astype(str), "cutoff": date}
            )
        )
    spine = pd.concat(spine, ignore_index=True)
    spine["cutoff"] = spine["cutoff"].astype("datetime64[us]")
    account = FeatureParams(**{**params.__dict__, "families": ["account"]})
    features = build_features(dataset_dir, spine, account)
    features = features[["customer_id", "cutoff", "arpu_monthly_3m", "value_tier"]]
    keys = pd.DataFrame(
        {
            "customer_id": campaigns["customer_id"].astype(str).to_numpy(),
            "cutoff": pd.to_datetime(campaigns["assigned_at"])
            .dt.normalize()
            .astype("datetime64[us]"),
        }
    )
    merged = keys.merge(features, on=["customer_id", "cutoff"], how="left")
    return pd.DataFrame(
        {
            "monthly_revenue": pd.to_numeric(merged["arpu_monthly_3m"]).to_numpy(float),
            "value_tier": merged["value_tier"].astype(object).fillna("unknown").to_numpy(),
        },
        index=campaigns.index,
    )


@dataclass(frozen=True)
class Settings:
    """What the comparison needs (from the `review` and `evaluation` config groups)."""

    months: tuple[int, ...] = (1, 2, 3)
    confidence: float = 0.95
    min_group_size: int = 30
    min_effect: float = 0.03
    months_kept: float = 12.0
    contact_cost: float = 2.0
    segments: tuple[str, ...] = ("offer", "channel", "value_tier", "cause_family")
    # How a saved customer is valued: MONTHS_OF_REVENUE (monthly revenue x months_kept) or
    # LIFETIME_VALUE (the rows' `lifetime_value`, from the time-to-churn model).
    value_basis: str = "months_of_revenue"


def _stratum(part: pd.DataFrame, column: str) -> dict | None:
    t = part.loc[part["group"] == "treatment", column].dropna()
    c = part.loc[part["group"] == "control", column].dropna()
    if len(t) == 0 or len(c) == 0:
        return None
    # Agresti-Caffo: one churner and one stayer more in each group, so a group with no
    # churner (or no stayer) still has a variance, and small groups get honest intervals.
    pt = (t.sum() + 1) / (len(t) + 2)
    pc = (c.sum() + 1) / (len(c) + 2)
    return {
        "n_t": len(t),
        "n_c": len(c),
        "x_t": float(t.sum()),
        "x_c": float(c.sum()),
        "raw": float(t.mean() - c.mean()),
        "adjusted": float(pt - pc),
        "var": float(pt * (1 - pt) / (len(t) + 2) + pc * (1 - pc) / (len(c) + 2)),
    }


def compare_groups(
    rows: pd.DataFrame, k: int, settings: Settings, strata: str = "campaign_id"
) -> dict:
    """Churn within k months, treatment against control, stratified by campaign.

    `difference` is treatment churn minus control churn (negative: the campaign kept
    customers), with its confidence interval, the per-contact difference, the smallest
    difference the groups could detect (80 % power) and a verdict.
    """
    column = f"churned_{k}m"
    parts = [s for _, p in rows.groupby(strata, sort=False) if (s := _stratum(p, column))]
    n_t = sum(s["n_t"] for s in parts)
    n_c = sum(s["n_c"] for s in parts)
    result = {
        "months": k,
        "treatment": n_t,
        "control": n_c,
        "churn_treatment": np.nan,
        "churn_control": np.nan,
        "difference": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "per_contact": np.nan,
        "per_contact_low": np.nan,
        "per_contact_high": np.nan,
        "detectable": np.nan,
        "verdict": NOT_YET if rows[column].notna().sum() == 0 else TOO_SMALL,
    }
    if not parts:
        return result
    weights = np.array([s["n_t"] + s["n_c"] for s in parts], dtype=float)
    weights /= weights.sum()
    raw = float(sum(w * s["raw"] for w, s in zip(weights, parts, strict=True)))
    # One campaign: the Agresti-Caffo interval. Pooled: the raw differences (adjusting
    # each of many small strata would pull the sum towards zero), Agresti-Caffo variances.
    center = parts[0]["adjusted"] if len(parts) == 1 else raw
    se = math.sqrt(sum(w**2 * s["var"] for w, s in zip(weights, parts, strict=True)))
    z = norm.ppf(0.5 + settings.confidence / 2)
    low, high = center - z * se, center + z * se
    done = rows[rows[column].notna()]
    treated = done[done["group"] == "treatment"]
    contact_rate = float(treated["contacted"].mean()) if len(treated) else np.nan
    detectable = (z + POWER_Z) * se
    if min(n_t, n_c) < settings.min_group_size:
        verdict = TOO_SMALL
    elif low > 0:
        verdict = RAISED
    elif high < 0:
        verdict = LOWERED
    elif detectable <= settings.min_effect:
        verdict = NO_EFFECT
    else:
        verdict = TOO_SMALL
    per = contact_rate if contact_rate and contact_rate > 0 else np.nan
    result.update(
        {
            "churn_treatment": sum(s["x_t"] for s in parts) / n_t,
            "churn_control": sum(s["x_c"] for s in parts) / n_c,
            "difference": raw,
            "ci_low": low,
            "ci_high": high,
            "contact_rate": contact_rate,
            "per_contact": raw / per,
            "per_contact_low": low / per,
            "per_contact_high": high / per,
            "detectable": detectable,
            "verdict": verdict,
        }
    )
    return result


def _money(rows: pd.DataFrame, difference: float, settings: Settings) -> dict:
    """Customers and revenue saved (negative: lost), what the campaign cost, return on spend.

    A saved customer is worth the treatment group's mean lifetime value at the campaign date
    (`settings.value_basis` LIFETIME_VALUE) or its monthly revenue x `months_kept`."""
    treated = rows[rows["group"] == "treatment"]
    contacted = treated[treated["contacted"]]
    accepted = contacted["accepted"].fillna(False).astype(bool)
    cost = float(contacted.loc[accepted, "offer_cost"].fillna(0).sum())
    cost += settings.contact_cost * len(contacted)
    saved = -difference * len(treated) if np.isfinite(difference) else np.nan
    if settings.value_basis == LIFETIME_VALUE:
        per_customer = float(np.nanmean(treated["lifetime_value"])) if len(treated) else np.nan
    else:
        revenue = float(np.nanmean(treated["monthly_revenue"])) if len(treated) else np.nan
        per_customer = revenue * settings.months_kept
    revenue_saved = saved * per_customer
    return {
        "customers_saved": saved,
        "revenue_saved": revenue_saved,
        "cost": cost,
        "return_on_spend": (revenue_saved - cost) / cost if cost > 0 else np.nan,
    }


def review_campaigns(rows: pd.DataFrame, settings: Settings) -> dict[str, pd.DataFrame]:
    """Every campaign at every follow-up month, then pooled rows per segment value.

    `rows` are `campaign_outcomes` rows with `monthly_revenue`, `value_tier` and (optionally)
    `cause_family`. Money figures use the longest complete follow-up.
    """
    longest = max(settings.months)
    per_campaign = []
    for cid, part in rows.groupby("campaign_id", sort=True):
        assigned = pd.to_datetime(part["assigned_at"]).min()
        for k in settings.months:
            row = {"campaign_id": cid, "assigned": assigned.date().isoformat()}
            row.update(compare_groups(part, k, settings))
            if k == longest:
                row.update(_money(part, row["difference"], settings))
            per_campaign.append(row)
    tables = {"campaigns": pd.DataFrame(per_campaign)}
    complete = rows[rows[f"churned_{longest}m"].notna()]
    overall = {"segment": "all campaigns", "value": "all"}
    overall.update(compare_groups(complete, longest, settings))
    overall.update(_money(complete, overall["difference"], settings))
    pooled = [overall]
    for segment in settings.segments:
        if segment not in complete or complete[segment].isna().all():
            continue
        for value, part in complete.groupby(segment, sort=True):
            row = {"segment": segment, "value": str(value)}
            row.update(compare_groups(part, longest, settings))
            row.update(_money(part, row["difference"], settings))
            pooled.append(row)
    tables["segments"] = pd.DataFrame(pooled)
    return tables


def compare_with_truth(per_campaign: pd.DataFrame, truth: dict) -> pd.DataFrame:
    """The simulator's true change of churn beside each interval, and whether it covers it."""
    frame = per_campaign.copy()
    true = []
    for row in frame.itertuples():
        value = truth.get(str(row.campaign_id), {}).get(f"effect_{row.months}m")
        true.append(np.nan if value is None else -float(value))
    frame["true_difference"] = true
    frame["covered"] = np.where(
        frame["true_difference"].notna() & frame["ci_low"].notna(),
        (frame["ci_low"] <= frame["true_difference"])
        & (frame["true_difference"] <= frame["ci_high"]),
        np.nan,
    )
    return frame


def read_truth(dataset_dir: str | Path) -> dict | None:
    """A simulated dataset's true campaign effects (truth/campaigns.json), if any."""
    path = Path(dataset_dir) / CAMPAIGNS_TRUTH_FILE
    return json.loads(path.read_text()) if path.exists() else None


def _months(k: int) -> str:
    return "1 month" if k == 1 else f"{k} months"


def describe(row: pd.Series | dict, what: str) -> str:
    """One plain sentence for a comparison row."""
    k = int(row["months"])
    if row["verdict"] == NOT_YET:
        return f"{what}: {_months(k)} follow-up not complete yet."
    if not np.isfinite(row["difference"]):
        return f"{what}: no treatment or no control customers to compare."
    diff = 100 * row["difference"]
    text = (
        f"{what}: churn within {_months(k)} {100 * row['churn_treatment']:.1f} % in the "
        f"treatment group vs "
        f"{100 * row['churn_control']:.1f} % in the control group ({diff:+.1f} points, 95 % CI "
        f"{100 * row['ci_low']:+.1f} to {100 * row['ci_high']:+.1f})"
    )
    verdict = row["verdict"]
    if verdict == RAISED:
        return f"{text}: the campaign RAISED churn."
    if verdict == LOWERED:
        return f"{text}: the campaign lowered churn."
    if verdict == NO_EFFECT:
        return f"{text}: no effect found."
    return (
        f"{text}: too small to tell (treatment {row['treatment']:,}, control "
        f"{row['control']:,}; only a change over {100 * row['detectable']:.1f} points could show)."
    )


def plot_campaign_effects(frame: pd.DataFrame, k: int) -> plt.Figure:
    """Each campaign's difference at k months with its interval (and the truth, if known)."""
    part = frame[(frame["months"] == k) & frame["difference"].notna()]
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.32 * len(part) + 1)))
    y = np.arange(len(part))
    ax.errorbar(
        100 * part["difference"],
        y,
        xerr=[
            100 * (part["difference"] - part["ci_low"]).clip(lower=0),
            100 * (part["ci_high"] - part["difference"]).clip(lower=0),
        ],
        fmt="o",
        color="#1f77b4",
        label="estimate, 95 % CI",
    )
    if "true_difference" in part and part["true_difference"].notna().any():
        ax.plot(100 * part["true_difference"], y, "x", color="#d62728", label="simulator's truth")
    ax.axvline(0, color="#888", lw=1)
    ax.set_yticks(y, part["campaign_id"].astype(str))
    ax.invert_yaxis()
    ax.set_xlabel(f"churn within {k} months: treatment minus control (points)")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


_PCT = "{:.1%}"
_POINTS = "{:+.1%}"
_FORMATS = {
    "churn_treatment": _PCT,
    "churn_control": _PCT,
    "contact_rate": "{:.0%}",
    "difference": _POINTS,
    "ci_low": _POINTS,
    "ci_high": _POINTS,
    "per_contact": _POINTS,
    "per_contact_low": _POINTS,
    "per_contact_high": _POINTS,
    "detectable": "{:.1%}",
    "true_difference": _POINTS,
    "customers_saved": "{:,.1f}",
    "revenue_saved": "{:,.0f}",
    "cost": "{:,.0f}",
    "return_on_spend": "{:+.0%}",
}


@dataclass
class ReviewOutputs:
    """What the report shows, computed."""

    title: str
    card: dict[str, str]
    tables: dict[str, pd.DataFrame]
    sentences: list[str]
    figures: dict[str, plt.Figure] = field(default_factory=dict)
    currency: str = ""
    # What a saved customer is worth, in words (value_basis_text).
    value_basis: str = "monthly revenue x months kept"


def render_review(outputs: ReviewOutputs) -> str:
    """The review as one self-contained HTML page (every value escaped)."""
    card = "".join(
        f"<div><span>{html.escape(k)}</span><br><b>{html.escape(str(v))}</b></div>"
        for k, v in outputs.card.items()
    )
    sentences = "".join(f"<li>{html.escape(s)}</li>" for s in outputs.sentences)
    campaigns = outputs.tables["campaigns"].drop(columns=["covered"], errors="ignore")
    segments = outputs.tables["segments"]
    figures = "".join(_embed(fig) for fig in outputs.figures.values())
    money = html.escape(outputs.currency or "currency units")
    sections = [
        f"<h1>{html.escape(outputs.title)}</h1>",
        f'<div class="card">{card}</div>',
        '<div class="primer">Each campaign is compared with its own randomized control group '
        "(never contacted). <i>difference</i>: churn of the treatment group minus churn of the "
        "control group, by assignment (intention to treat: every treatment customer counts, "
        "reached or not); negative means the campaign kept customers. <i>per contact</i>: the "
        "difference divided by the share of the treatment group actually reached. "
        "<i>detectable</i>: the smallest difference these groups could show (80 % power). "
        f"Money in {money}: revenue saved = customers saved x {html.escape(outputs.value_basis)}; "
        "cost = accepted offers + contacts.</div>",
        "<h2>What the campaigns did</h2>",
        f"<ul>{sentences}</ul>",
        f'<div class="plots">{figures}</div>',
        "<h2>Per campaign</h2>",
        _table(campaigns, _FORMATS),
        "<h2>By offer, channel, value tier and cause (all campaigns pooled)</h2>",
        "<p>Differences within each campaign, weighted by campaign size, at the longest "
        "complete follow-up.</p>",
        _table(segments, _FORMATS),
        f"<p><small>Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by churnml.</small></p>",
    ]
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(outputs.title)}</title><style>{_STYLE}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )


def summary_sentences(tables: dict[str, pd.DataFrame], longest: int) -> list[str]:
    """The headline per campaign (longest complete follow-up) and the pooled verdicts."""
    out = []
    per = tables["campaigns"]
    for cid, part in per.groupby("campaign_id", sort=True):
        done = part[part["verdict"] != NOT_YET]
        row = (done if len(done) else part).sort_values("months").iloc[-1]
        out.append(describe(row, f"Campaign {cid}"))
    for row in tables["segments"].itertuples():
        label = row.value if row.segment != "cause_family" else cause_label(row.value)
        what = "All campaigns" if row.segment == "all campaigns" else f"{row.segment} {label}"
        if row.segment == "all campaigns" or row.verdict in (RAISED, LOWERED):
            out.append(describe(row._asdict(), what))
    return out


def write_review(path: Path, outputs: ReviewOutputs) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(render_review(outputs)))


def load_review_rows(dataset_dir: Path, reasons: list[str], settings: Settings, params):
    """Campaign rows with outcomes, revenue and value tier; None without a campaigns table."""
    dataset_dir = require_dataset(dataset_dir)
    campaigns = read_campaigns(dataset_dir)
    if campaigns is None:
        return None
    customers = read_table(
        dataset_dir, "customers", ["customer_id", "terminated_at", "termination_reason"]
    )
    rows = campaign_outcomes(
        campaigns, customers, dataset_as_of(dataset_dir), reasons, settings.months
    )
    context = customer_context(dataset_dir, campaigns, params)
    return pd.concat([rows, context], axis=1)


def causes_at_campaigns(dataset_dir: Path, rows: pd.DataFrame, cfg) -> pd.Series | None:
    """Each campaign customer's main cause at the campaign date, from the champion's reasons
    (features built from rows before the date); None when no champion is registered."""
    from churnml.explain import contributions, customer_reasons
    from churnml.tracking import NoChampionError, load_registered_model

    try:
        model, version, _ = load_registered_model(cfg.tracking, alias=cfg.tracking.champion_alias)
    except NoChampionError as error:
        log.info("review: no cause families (%s)", error)
        return None
    if model.settings.get("data_kind", "events") != "events":
        log.info("review: no cause families (the champion was trained on a snapshot)")
        return None
    spine = pd.DataFrame(
        {
            "customer_id": rows["customer_id"].astype(str).to_numpy(),
            "cutoff": pd.to_datetime(rows["assigned_at"]).dt.normalize().astype("datetime64[us]"),
        }
    )
    features = build_features(dataset_dir, spine, FeatureParams(**model.settings["features"]))
    reasons = customer_reasons(contributions(model, features, "path"), top_n=1)
    log.info("review: cause families from %s v%s", cfg.tracking.registered_model_name, version)
    return pd.Series(reasons["main_cause"].fillna("none").to_numpy(), index=rows.index)


def lifetime_values_at_campaigns(cfg, dataset_dir: Path, rows: pd.DataFrame):
    """Each campaign customer's lifetime value at the campaign date from the registered
    time-to-churn model (features from rows before the date; its margin and discount from
    the `hazard` settings), with the model's name and version; None when no such model is
    registered for the dataset (or `hazard.enabled` is false)."""
    from churnml.hazard import lifetime_value
    from churnml.hazard_job import load_for_scoring

    hazard = load_for_scoring(cfg)
    if hazard is None:
        return None
    spine = pd.DataFrame(
        {
            "customer_id": rows["customer_id"].astype(str).to_numpy(),
            "cutoff": pd.to_datetime(rows["assigned_at"]).dt.normalize().astype("datetime64[us]"),
        }
    )
    features = build_features(
        dataset_dir, spine, FeatureParams(**hazard.model.settings["features"])
    )
    revenue = pd.to_numeric(features[cfg.scoring.revenue_feature], errors="coerce")
    values = lifetime_value(
        hazard.model.survival(features),
        revenue.to_numpy(float),
        cfg.hazard.margin_rate,
        cfg.hazard.annual_discount_rate,
    )
    return pd.Series(values, index=rows.index), f"{hazard.name} v{hazard.version}"


def value_basis_text(settings: Settings, model: str | None, months: int | None) -> str:
    """What a saved customer is worth, in words, for the report and the run."""
    if settings.value_basis == LIFETIME_VALUE:
        return (
            f"lifetime value (expected discounted margin over {months} months, from {model}, "
            "the treatment group's mean at the campaign date)"
        )
    return f"{settings.months_kept:g} months of revenue (no time-to-churn model registered)"


@dataclass
class ReviewResult:
    """What `churnml review` prints."""

    report_path: Path | None
    run_id: str | None
    sentences: list[str]
    coverage: float | None = None


def settings_from(cfg) -> Settings:
    return Settings(
        months=tuple(sorted(set(cfg.review.months))),
        confidence=cfg.review.confidence,
        min_group_size=cfg.review.min_group_size,
        min_effect=cfg.review.min_effect,
        months_kept=cfg.evaluation.months_kept,
        contact_cost=cfg.evaluation.contact_cost,
        segments=tuple(cfg.review.segments),
    )


def run_review(cfg) -> ReviewResult:
    """Review every campaign of the dataset; skipped (one log line) without a campaigns table."""
    from churnml import tracking
    from churnml.jobs import _check_events, _job_run

    dataset_dir = require_dataset(cfg.data.path)
    if read_campaigns(dataset_dir) is None:
        log.info("review: skipped, table campaigns not found in %s", dataset_dir)
        return ReviewResult(None, None, [f"no campaigns table in {dataset_dir}: nothing to review"])
    if cfg.validation.enabled:
        _check_events(cfg, dataset_dir, Path(cfg.run_dir))
    settings = settings_from(cfg)
    with _job_run(cfg, "review") as run_id:
        rows = load_review_rows(dataset_dir, list(cfg.label.reasons), settings, cfg.features)
        if "cause_family" in settings.segments and cfg.review.causes_from_champion:
            causes = causes_at_campaigns(dataset_dir, rows, cfg)
            if causes is not None:
                rows["cause_family"] = causes
        valued = lifetime_values_at_campaigns(cfg, dataset_dir, rows)
        value_model, value_months = None, None
        if valued is not None:
            rows["lifetime_value"], value_model = valued
            value_months = cfg.hazard.months
            settings = Settings(**{**settings.__dict__, "value_basis": LIFETIME_VALUE})
        basis = value_basis_text(settings, value_model, value_months)
        log.info("review: saved customers valued at %s", basis)
        tables = review_campaigns(rows, settings)
        truth = read_truth(dataset_dir)
        coverage = None
        if truth is not None:
            tables["campaigns"] = compare_with_truth(tables["campaigns"], truth)
            covered = tables["campaigns"]["covered"].dropna()
            coverage = float(covered.mean()) if len(covered) else None
        longest = max(settings.months)
        sentences = summary_sentences(tables, longest)
        if coverage is not None:
            sentences.append(
                f"Simulated data: the 95 % intervals hold the simulator's true effect in "
                f"{coverage:.0%} of {len(covered)} campaign-months."
            )
        sentences.append(f"Saved customers are valued at {basis}.")
        card = {
            "dataset": cfg.data.name,
            "campaigns": str(rows["campaign_id"].nunique()),
            "customers assigned": f"{len(rows):,}",
            "control share": f"{(rows['group'] == 'control').mean():.0%}",
            "follow-up": ", ".join(_months(k) for k in settings.months),
            "churn counted": ", ".join(cfg.label.reasons),
            "a saved customer is worth": basis,
            "MLflow run": run_id,
        }
        outputs = ReviewOutputs(
            title=f"Campaign review: {cfg.data.name}",
            card=card,
            tables=tables,
            sentences=sentences,
            figures={"effects": plot_campaign_effects(tables["campaigns"], longest)},
            currency=cfg.data.currency,
            value_basis=basis,
        )
        page = render_review(outputs)
        report_path = Path(cfg.paths.reports_dir) / f"{cfg.review.report_name}.html"
        for path in (report_path, report_path.with_name(f"{report_path.stem}_{run_id}.html")):
            write_atomic(path, lambda tmp: tmp.write_text(page))
        tracking.log_text(page, f"review/{report_path.name}")
        tracking.log_frame(tables["campaigns"], "review/campaigns.csv")
        tracking.log_frame(tables["segments"], "review/segments.csv")
        tracking.log_params(
            {
                "dataset": cfg.data.name,
                "months": ",".join(map(str, settings.months)),
                "confidence": settings.confidence,
                "min_group_size": settings.min_group_size,
                "min_effect": settings.min_effect,
                "reasons": ",".join(cfg.label.reasons),
                "value_basis": settings.value_basis,
                "value_model": value_model or "",
            }
        )
        overall = tables["segments"].iloc[0]
        metrics = {
            "campaigns": float(rows["campaign_id"].nunique()),
            "customers": float(len(rows)),
            f"difference_{longest}m": overall["difference"],
            f"ci_low_{longest}m": overall["ci_low"],
            f"ci_high_{longest}m": overall["ci_high"],
            "customers_saved": overall["customers_saved"],
            "revenue_saved": overall["revenue_saved"],
            "cost": overall["cost"],
            "campaigns_raising_churn": float((tables["campaigns"]["verdict"] == RAISED).sum()),
        }
        if coverage is not None:
            metrics["truth_coverage"] = coverage
        tracking.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)})
        tracking.describe_run("\n".join(sentences[:60]))
        tracking.set_tags({"exit_code": 0})
    return ReviewResult(report_path, run_id, sentences, coverage)


def control_size_needed(
    control_churn: float,
    effect: float,
    treatment_per_control: float,
    confidence: float = 0.95,
    power: float = 0.8,
) -> int:
    """Control customers a campaign needs to detect a change of churn of `effect` (0.02 = 2
    points, either way) when the control churns at `control_churn`, with
    `treatment_per_control` treatment customers per control customer (docs/campaigns.md)."""
    z = norm.ppf(0.5 + confidence / 2) + norm.ppf(power)
    treated = min(max(control_churn - abs(effect), 0.0), 1.0)
    spread = control_churn * (1 - control_churn) + treated * (1 - treated) / treatment_per_control
    return math.ceil(z**2 * spread / effect**2)
