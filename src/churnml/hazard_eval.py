"""How good the survival curves are, out of time: concordance, Brier score, calibration, truth.

All measures take the curves S(1..K) of the customers at a test cutoff and what happened to
them up to a censoring date (the data's `as_of`):
- time-dependent concordance (Antolini's C-td on months): for each customer who left in month
  m and each one still there after month m, is the leaver's S(m) the lower?
- integrated Brier score over the observed months, with inverse-probability-of-censoring
  weights (Graf et al.; other exits censor), against the Kaplan-Meier curve of the training
  months given to everyone: skill = 1 - IBS / IBS(Kaplan-Meier);
- per horizon with the whole window observed: ROC AUC of 1 - S(h) on who left within it,
  mean predicted against realised, calibration by decile, and the simulator's truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from churnml.hazard import (
    churn_probabilities,
    exit_facts,
    month_edges,
    survival_from_hazards,
)


@dataclass
class Outcomes:
    """What happened to each test row after its cutoff, in months and days.

    `exit_month`: the month (1..) of a counted exit seen by the censoring date, else 0;
    `last_month`: the months the customer was wholly there and observed (a counted or other
    exit in month m leaves m - 1); `other_month`: the month of an exit for another reason, else
    0; `exit_days`/`other_days`: days after the cutoff of the counted / other exit (NaN: none).
    """

    exit_month: np.ndarray
    last_month: np.ndarray
    other_month: np.ndarray
    exit_days: np.ndarray
    other_days: np.ndarray
    follow_days: float
    observed_months: int


def outcomes(
    keys: pd.DataFrame,
    customers: pd.DataFrame,
    censor_at: pd.Timestamp,
    months: int,
    reasons: list[str] | tuple[str, ...],
) -> Outcomes:
    """The test rows' outcomes; `keys` are rows of one cutoff (customer_id, cutoff)."""
    cutoff = pd.Timestamp(keys["cutoff"].iloc[0])
    exit_at, reason = exit_facts(customers, keys)
    counted = np.isin(reason.astype(str), list(reasons))
    censor = np.datetime64(pd.Timestamp(censor_at).to_datetime64(), "ns")
    seen = ~np.isnat(exit_at) & (exit_at <= censor) & (exit_at > np.datetime64(cutoff, "ns"))
    edges = month_edges(keys["cutoff"], months)[0]
    observed = int((edges[1:] <= censor).sum())
    month = np.zeros(len(keys), dtype=int)
    if seen.any():
        month[seen] = np.searchsorted(edges, exit_at[seen], side="left")
    month[month > observed] = 0  # an exit in a month not wholly observed is not counted
    exit_month = np.where(seen & counted, month, 0)
    other_month = np.where(seen & ~counted, month, 0)
    any_month = np.maximum(exit_month, other_month)
    last_month = np.where(any_month > 0, any_month - 1, observed)
    days = (exit_at - np.datetime64(cutoff, "ns")) / np.timedelta64(1, "D")
    return Outcomes(
        exit_month=exit_month,
        last_month=last_month,
        other_month=other_month,
        exit_days=np.where(seen & counted, days, np.nan),
        other_days=np.where(seen & ~counted, days, np.nan),
        follow_days=float((censor - np.datetime64(cutoff, "ns")) / np.timedelta64(1, "D")),
        observed_months=observed,
    )


def concordance_td(survival: np.ndarray, out: Outcomes) -> float:
    """Antolini's time-dependent concordance over the observed months (NaN: no pair)."""
    concordant = pairs = 0.0
    for m in range(1, min(out.observed_months, survival.shape[1]) + 1):
        cases = np.flatnonzero(out.exit_month == m)
        if len(cases) == 0:
            continue
        controls = np.sort(survival[out.last_month >= m, m - 1])
        if len(controls) == 0:
            continue
        s = survival[cases, m - 1]
        higher = len(controls) - np.searchsorted(controls, s, side="right")
        ties = np.searchsorted(controls, s, side="right") - np.searchsorted(controls, s, "left")
        concordant += float(higher.sum() + 0.5 * ties.sum())
        pairs += float(len(cases) * len(controls))
    return concordant / pairs if pairs else float("nan")


def censoring_survival(out: Outcomes, months: int) -> np.ndarray:
    """G(0..months): Kaplan-Meier chance of not being censored (by another exit) by month m."""
    g = np.ones(months + 1)
    for m in range(1, months + 1):
        at_risk = np.sum(
            (out.last_month >= m - 1) & ((out.exit_month == 0) | (out.exit_month >= m))
        )
        censored = np.sum(out.other_month == m)
        g[m] = g[m - 1] * (1.0 - censored / at_risk if at_risk else 1.0)
    return g


def brier_scores(survival: np.ndarray, out: Outcomes) -> np.ndarray:
    """IPCW Brier score of the curves at each observed month m (Graf et al. 1999)."""
    months = min(out.observed_months, survival.shape[1])
    g = censoring_survival(out, months)
    scores = np.full(months, np.nan)
    for m in range(1, months + 1):
        left = (out.exit_month > 0) & (out.exit_month <= m)
        stayed = out.last_month >= m
        weight_left = np.where(
            left, 1.0 / np.maximum(g[np.maximum(out.exit_month - 1, 0)], 1e-9), 0
        )
        weight_stayed = np.where(stayed, 1.0 / max(g[m], 1e-9), 0.0)
        s = survival[:, m - 1]
        scores[m - 1] = np.mean(weight_left * s**2 + weight_stayed * (1 - s) ** 2)
    return scores


def integrated_brier(survival: np.ndarray, out: Outcomes) -> float:
    scores = brier_scores(survival, out)
    return float(np.mean(scores)) if len(scores) else float("nan")


def realised_within(out: Outcomes, days: int) -> np.ndarray:
    """1 for a counted exit within `days` of the cutoff (an earlier other exit: 0)."""
    return (np.nan_to_num(out.exit_days, nan=np.inf) <= days).astype(int)


def calibration_table(p: np.ndarray, y: np.ndarray, truth: np.ndarray | None, bins: int = 10):
    """Per decile of the predicted probability: mean predicted, realised (and the truth)."""
    frame = pd.DataFrame({"predicted": p, "realised": y})
    if truth is not None:
        frame["truth"] = truth
    ranks = pd.Series(p).rank(method="first")
    frame["decile"] = np.minimum((ranks - 1) * bins // max(len(p), 1), bins - 1).astype(int) + 1
    table = frame.groupby("decile").mean()
    table.insert(0, "customers", frame.groupby("decile").size())
    return table.reset_index()


@dataclass
class HazardEvaluation:
    metrics: dict[str, float]
    calibration: dict[int, pd.DataFrame]
    brier: pd.DataFrame


def evaluate_curves(
    survival: np.ndarray,
    baseline_hazards: np.ndarray,
    out: Outcomes,
    horizons_days: list[int],
    prefix: str,
    truth: dict[int, np.ndarray] | None = None,
) -> HazardEvaluation:
    """Every measure of the curves of one test cutoff; metric names start with `prefix`."""
    metrics: dict[str, float] = {
        f"{prefix}rows": float(len(survival)),
        f"{prefix}observed_months": float(out.observed_months),
        f"{prefix}concordance": concordance_td(survival, out),
    }
    km = survival_from_hazards(np.tile(baseline_hazards, (len(survival), 1)))
    brier = pd.DataFrame(
        {
            "month": np.arange(1, min(out.observed_months, survival.shape[1]) + 1),
            "brier_model": brier_scores(survival, out),
            "brier_kaplan_meier": brier_scores(km, out),
        }
    )
    if len(brier):
        ibs, ibs_km = brier["brier_model"].mean(), brier["brier_kaplan_meier"].mean()
        metrics[f"{prefix}ibs"] = float(ibs)
        metrics[f"{prefix}ibs_kaplan_meier"] = float(ibs_km)
        metrics[f"{prefix}ibs_skill"] = float(1 - ibs / ibs_km) if ibs_km > 0 else float("nan")
    probabilities = churn_probabilities(survival, horizons_days)
    calibration = {}
    for days in sorted(horizons_days):
        if days > out.follow_days:
            continue  # the window runs past the data: not observable at this cutoff
        p = probabilities[f"churn_probability_{days}d"]
        y = realised_within(out, days)
        t = truth.get(days) if truth else None
        metrics[f"{prefix}mean_probability_{days}d"] = float(p.mean())
        metrics[f"{prefix}realised_rate_{days}d"] = float(y.mean())
        if y.mean() > 0:
            metrics[f"{prefix}mean_to_realised_{days}d"] = float(p.mean() / y.mean())
        if 0 < y.sum() < len(y):
            metrics[f"{prefix}auc_{days}d"] = float(roc_auc_score(y, p))
        if t is not None:
            known = ~np.isnan(t)
            if known.any():
                metrics[f"{prefix}truth_mean_{days}d"] = float(np.mean(t[known]))
                if 0 < y[known].sum() < known.sum():
                    metrics[f"{prefix}truth_auc_{days}d"] = float(roc_auc_score(y[known], t[known]))
                    if f"{prefix}auc_{days}d" in metrics:
                        metrics[f"{prefix}truth_gap_{days}d"] = (
                            metrics[f"{prefix}truth_auc_{days}d"] - metrics[f"{prefix}auc_{days}d"]
                        )
        calibration[days] = calibration_table(p, y, t)
    return HazardEvaluation(metrics, calibration, brier)


def plot_calibration(table: pd.DataFrame, days: int, title: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.5))
    top = max(table["predicted"].max(), table["realised"].max()) * 1.1 or 1.0
    ax.plot([0, top], [0, top], color="#999999", lw=1, ls="--", label="perfect")
    ax.plot(table["predicted"], table["realised"], "o-", color="#3b6ea8", label="realised")
    if "truth" in table:
        ax.plot(table["predicted"], table["truth"], "s:", color="#c0504d", label="simulator truth")
    ax.set(
        xlabel=f"predicted churn within {days} days (1 - S), decile mean",
        ylabel="share who left",
        title=f"{title}: {days}-day calibration",
    )
    ax.legend()
    fig.tight_layout()
    return fig


def plot_brier(brier: pd.DataFrame, title: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(brier["month"], brier["brier_model"], "o-", label="hazard model")
    ax.plot(brier["month"], brier["brier_kaplan_meier"], "s--", label="Kaplan-Meier (no features)")
    ax.set(xlabel="months after the cutoff", ylabel="Brier score (IPCW)", title=title)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_curves_by(survival: np.ndarray, groups: pd.Series, title: str):
    """Mean survival curve per group (value tier, life-cycle stage)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    months = np.arange(0, survival.shape[1] + 1)
    labels = groups.astype(object).where(groups.notna(), "unknown").astype(str).to_numpy()
    for group in sorted(set(labels)):
        mask = labels == group
        curve = np.concatenate([[1.0], survival[mask].mean(axis=0)])
        ax.plot(months, curve * 100, marker=".", label=f"{group} ({mask.sum():,})")
    ax.set(xlabel="months from now", ylabel="still a customer (%)", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
