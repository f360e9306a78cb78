"""Model quality and decision metrics on a labelled split, with their plots.

Metric names follow `<split>_<name>`: test_roc_auc, test_pr_auc, test_top_decile_lift,
test_lift_at_5pct, test_brier, test_ece (and the same with val_).
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    roc_auc_score,
    roc_curve,
)

from churnml.config import EvaluationConfig

ECE_BINS = 20


def lift_at(y: np.ndarray, p: np.ndarray, fraction: float) -> float:
    """Churn rate among the top `fraction` by score, over the overall churn rate."""
    n_top = max(1, round(len(p) * fraction))
    top = np.argsort(-p, kind="stable")[:n_top]
    base = y.mean()
    return float(y[top].mean() / base) if base > 0 else float("nan")


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE over equal-count bins of the predicted probability.

    Equal-count bins (not equal-width) because churn probabilities crowd near zero: equal-width
    bins would put almost every customer in the first bin and hide miscalibration.
    """
    order = np.argsort(p, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, bins):
        if len(chunk):
            total += len(chunk) * abs(p[chunk].mean() - y[chunk].mean())
    return float(total / len(p))


def classification_metrics(y: np.ndarray, p: np.ndarray, prefix: str) -> dict[str, float]:
    """The standard metric set for one split, named `<prefix>_<metric>`."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    return {
        f"{prefix}_roc_auc": float(roc_auc_score(y, p)),
        f"{prefix}_pr_auc": float(average_precision_score(y, p)),
        f"{prefix}_top_decile_lift": lift_at(y, p, 0.10),
        f"{prefix}_lift_at_5pct": lift_at(y, p, 0.05),
        f"{prefix}_brier": float(brier_score_loss(y, p)),
        f"{prefix}_ece": expected_calibration_error(y, p),
        f"{prefix}_churn_rate": float(y.mean()),
        f"{prefix}_mean_probability": float(p.mean()),
        f"{prefix}_rows": float(len(y)),
    }


def auc_by_segment(frame: pd.DataFrame, segment_columns: list[str]) -> pd.DataFrame:
    """ROC AUC, size and churn rate per segment value (`frame` has label and probability)."""
    rows = []
    for column in segment_columns:
        if column not in frame.columns:
            continue
        for value, part in frame.groupby(frame[column].astype(str), observed=True):
            both_classes = part["label"].nunique() == 2
            rows.append(
                {
                    "segment": column,
                    "value": value,
                    "rows": len(part),
                    "churn_rate": part["label"].mean(),
                    "roc_auc": roc_auc_score(part["label"], part["probability"])
                    if both_classes
                    else np.nan,
                }
            )
    return pd.DataFrame(rows, columns=["segment", "value", "rows", "churn_rate", "roc_auc"])


@dataclass(frozen=True)
class ProfitCurve:
    """Realised profit of contacting the top-k customers by score, for every k."""

    fraction: np.ndarray
    profit: np.ndarray
    best_fraction: float
    best_profit: float
    capacity: float


def profit_curve(
    y: np.ndarray, p: np.ndarray, monthly_revenue: np.ndarray, settings: EvaluationConfig
) -> ProfitCurve:
    """Profit of a retention campaign on the top-k by score, as the list grows.

    Contacting a customer costs `contact_cost`; a churner contacted is saved with probability
    `save_rate`, which keeps `monthly_revenue x months_kept` and costs `offer_cost`.
    The best size is searched within the capacity limit (a fraction of the base).
    """
    order = np.argsort(-p, kind="stable")
    value = np.nan_to_num(monthly_revenue[order], nan=0.0) * settings.months_kept
    gain = y[order] * settings.save_rate * (value - settings.offer_cost) - settings.contact_cost
    profit = np.concatenate([[0.0], np.cumsum(gain)])
    fraction = np.arange(len(profit)) / len(y)
    allowed = fraction <= settings.contact_capacity + 1e-12
    best = int(np.argmax(np.where(allowed, profit, -np.inf)))
    return ProfitCurve(
        fraction, profit, float(fraction[best]), float(profit[best]), settings.contact_capacity
    )


def plot_roc(y: np.ndarray, p: np.ndarray, title: str) -> plt.Figure:
    fpr, tpr, _ = roc_curve(y, p)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(y, p):.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title=title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def plot_gain_lift(y: np.ndarray, p: np.ndarray, title: str) -> plt.Figure:
    order = np.argsort(-p, kind="stable")
    captured = np.cumsum(y[order]) / max(y.sum(), 1)
    fraction = np.arange(1, len(y) + 1) / len(y)
    fig, (gain_ax, lift_ax) = plt.subplots(1, 2, figsize=(10, 4.5))
    gain_ax.plot(fraction, captured, label="model")
    gain_ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
    gain_ax.set(
        xlabel="Share of customers contacted",
        ylabel="Share of churners reached",
        title=f"{title}: cumulative gain",
    )
    gain_ax.legend(loc="lower right")
    lift_ax.plot(fraction, captured / fraction)
    lift_ax.axhline(1.0, linestyle="--", color="grey")
    lift_ax.set(
        xlabel="Share of customers contacted",
        ylabel="Lift",
        xlim=(0.005, 1),
        title=f"{title}: lift",
    )
    lift_ax.set_xscale("log")
    fig.tight_layout()
    return fig


def plot_reliability(y: np.ndarray, p: np.ndarray, title: str) -> plt.Figure:
    order = np.argsort(p, kind="stable")
    bins = [chunk for chunk in np.array_split(order, ECE_BINS) if len(chunk)]
    predicted = [p[b].mean() for b in bins]
    observed = [y[b].mean() for b in bins]
    fig, ax = plt.subplots(figsize=(5, 5))
    top = max(max(predicted), max(observed)) * 1.05
    ax.plot([0, top], [0, top], linestyle="--", color="grey", label="perfect")
    ax.plot(predicted, observed, marker="o", label="model")
    ax.set(
        xlabel="Mean predicted probability",
        ylabel="Observed churn rate",
        title=f"{title}: reliability ({ECE_BINS} equal-count bins)",
    )
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def plot_score_distribution(y: np.ndarray, p: np.ndarray, title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, max(p.max(), 1e-3), 40)
    ax.hist(p[y == 0], bins=bins, alpha=0.6, density=True, label="stayed")
    ax.hist(p[y == 1], bins=bins, alpha=0.6, density=True, label="churned")
    ax.set(xlabel="Churn probability", ylabel="Density", title=f"{title}: scores by outcome")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_profit_curve(curve: ProfitCurve, title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(curve.fraction, curve.profit)
    ax.axvline(curve.capacity, linestyle=":", color="grey", label="capacity")
    ax.axvline(
        curve.best_fraction,
        linestyle="--",
        color="green",
        label=f"best: top {curve.best_fraction:.1%} -> {curve.best_profit:,.0f}",
    )
    ax.set(
        xlabel="Share of customers contacted",
        ylabel="Campaign profit",
        title=f"{title}: expected profit",
    )
    ax.set_xlim(0, min(1.0, curve.capacity * 3))
    ax.legend()
    fig.tight_layout()
    return fig
