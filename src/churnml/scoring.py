"""Batch scoring: churn probabilities with reasons, value tier, revenue at risk and an action.

Pure functions here; the job that reads, locks, logs and publishes is `jobs.run_scoring`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from churnml.config import ActionRule, Attribution, EvaluationConfig, ScoringConfig
from churnml.contract import SCORE_COLUMNS
from churnml.explain import contributions, customer_reasons, shap_contributions
from churnml.features import FeatureParams
from churnml.features.account import value_tier_sql
from churnml.io import output_lock
from churnml.model import ChurnModel

log = logging.getLogger(__name__)

DAYS_PER_MONTH = 365.25 / 12
# Optional extensions of the contract's scores table.
EXTRA_COLUMNS = (
    "main_cause",
    "reason_method",
    "monthly_revenue",
    "expected_profit",
    "priority_rank",
)
PSI_BINS = 10


def risk_bands(probability: np.ndarray) -> np.ndarray:
    """Decile bands of the score distribution: "D01" is the riskiest 10 %, "D10" the safest."""
    order = np.argsort(-probability, kind="stable")
    ranks = np.empty(len(probability), dtype=np.int64)
    ranks[order] = np.arange(len(probability))
    decile = np.minimum(ranks * 10 // max(len(probability), 1), 9) + 1
    return np.array([f"D{d:02d}" for d in decile])


def value_tiers(
    revenue: np.ndarray, customer_id: np.ndarray, cuts: list[float] | tuple[float, ...]
) -> np.ndarray:
    """A/B/C/D by revenue rank among the scored customers, with the feature library's rule
    (`value_tier_sql`: exact shares, ties broken by a hash of the id)."""
    frame = pd.DataFrame(
        {
            "_row": np.arange(len(revenue)),
            "customer_id": np.asarray(customer_id).astype(str),
            "revenue": np.asarray(revenue, dtype=float),
            "weight": 1.0,
            "cutoff": 0,
        }
    )
    frame["revenue"] = frame["revenue"].where(np.isfinite(frame["revenue"]))
    with duckdb.connect() as con:
        con.register("scored", frame)
        tiers = con.execute(
            f"SELECT {value_tier_sql('revenue', list(cuts))} AS tier FROM scored ORDER BY _row"
        ).fetchnumpy()["tier"]
    return np.asarray(tiers, dtype=object)


def choose_actions(
    main_cause: pd.Series, tier: pd.Series, rules: list[ActionRule], default_action: str
) -> pd.Series:
    """The retention playbook per customer: the first rule matching (cause, tier) wins.

    A rule's `cause` or `tiers` left empty matches any value.
    """
    action = pd.Series(default_action, index=main_cause.index, dtype=object)
    decided = pd.Series(False, index=main_cause.index)
    for rule in rules:
        match = ~decided
        if rule.cause:
            match &= main_cause == rule.cause
        if rule.tiers:
            match &= tier.isin(rule.tiers)
        action[match] = rule.action
        decided |= match
    return action


def score_frame(
    model: ChurnModel,
    features: pd.DataFrame,
    scoring_date: pd.Timestamp,
    model_name: str,
    model_version: str,
    run_id: str,
    settings: ScoringConfig,
    decision: EvaluationConfig,
) -> pd.DataFrame:
    """Scores for every row of `features` (one per eligible customer), ranked by priority.

    With path attributions, the customers at the top of the call lists (by revenue at risk and
    by expected profit) still get reasons from exact SHAP values: `reason_method` says which.
    """
    probability = model.predict_proba(features)
    revenue_column = settings.revenue_feature
    if revenue_column in features:
        revenue = pd.to_numeric(features[revenue_column], errors="coerce").to_numpy(float)
    else:
        revenue = np.full(len(features), np.nan)
    if "value_tier" in features:
        tier = features["value_tier"].astype(object).to_numpy()
    else:
        cuts = FeatureParams(**model.settings.get("features", {})).value_tier_cuts
        tier = value_tiers(revenue, features["customer_id"].to_numpy(), cuts)
    horizon_months = model.settings.get("label", {}).get("horizon_days", 60) / DAYS_PER_MONTH
    revenue_at_risk = probability * np.nan_to_num(revenue, nan=0.0) * horizon_months
    value_kept = np.nan_to_num(revenue, nan=0.0) * decision.months_kept
    expected_profit = (
        probability * decision.save_rate * (value_kept - decision.offer_cost)
        - decision.contact_cost
    )
    customer_id = features["customer_id"].astype(str).to_numpy()
    started = time.perf_counter()
    reasons = customer_reasons(contributions(model, features, settings.attribution), top_n=3)
    approximate = settings.attribution == Attribution.path and model.kind == "lightgbm"
    reasons["reason_method"] = "path" if approximate else "shap"
    log.info(
        "reasons (%s) for %d customers in %.1f s",
        settings.attribution.value,
        len(reasons),
        time.perf_counter() - started,
    )
    if approximate and settings.exact_reasons_rows > 0:
        started = time.perf_counter()
        top = _top_of_call_lists(
            customer_id, probability, revenue_at_risk, expected_profit, settings.exact_reasons_rows
        )
        exact = customer_reasons(shap_contributions(model, features.iloc[top]), top_n=3)
        exact["reason_method"] = "shap"
        reasons.iloc[top] = exact[reasons.columns].to_numpy()
        log.info(
            "reasons from exact SHAP for the %d customers at the top of the call lists in %.1f s",
            len(top),
            time.perf_counter() - started,
        )
    main_cause = reasons["main_cause"].fillna("none").astype(str)
    frame = pd.DataFrame(
        {
            "scoring_date": pd.Timestamp(scoring_date),
            "customer_id": customer_id,
            "churn_probability": probability,
            "risk_band": risk_bands(probability),
            "value_tier": tier,
            "revenue_at_risk": revenue_at_risk,
            "reason_1": reasons["reason_1"].to_numpy(),
            "reason_2": reasons["reason_2"].to_numpy(),
            "reason_3": reasons["reason_3"].to_numpy(),
            "model_name": model_name,
            "model_version": str(model_version),
            "run_id": run_id,
            "main_cause": main_cause.to_numpy(),
            "reason_method": reasons["reason_method"].to_numpy(),
            "monthly_revenue": revenue,
            "expected_profit": expected_profit,
        }
    )
    frame["action"] = choose_actions(
        frame["main_cause"], frame["value_tier"], settings.actions, settings.default_action
    ).to_numpy()
    frame = frame.sort_values(
        ["revenue_at_risk", "churn_probability", "customer_id"],
        ascending=[False, False, True],
        kind="stable",
    ).reset_index(drop=True)
    frame["priority_rank"] = np.arange(1, len(frame) + 1)
    return frame[[*SCORE_COLUMNS, *EXTRA_COLUMNS]]


def _top_of_call_lists(
    customer_id: np.ndarray,
    probability: np.ndarray,
    revenue_at_risk: np.ndarray,
    expected_profit: np.ndarray,
    size: int,
) -> np.ndarray:
    """Positions of the top `size` customers by priority (revenue at risk) or expected profit,
    with the same tie-breaks as the published rankings."""
    by_priority = np.lexsort((customer_id, -probability, -revenue_at_risk))[:size]
    by_profit = np.lexsort((customer_id, -expected_profit))[:size]
    return np.union1d(by_priority, by_profit)


def contact_list(scores: pd.DataFrame, size: int) -> pd.DataFrame:
    """The top customers by expected profit who have an action and a positive expected profit."""
    callable_rows = scores[(scores["action"] != "no action") & (scores["expected_profit"] > 0)]
    top = callable_rows.sort_values(
        ["expected_profit", "customer_id"], ascending=[False, True], kind="stable"
    ).head(size)
    return top[
        [
            "customer_id",
            "churn_probability",
            "value_tier",
            "expected_profit",
            "revenue_at_risk",
            "reason_1",
            "reason_2",
            "reason_3",
            "action",
        ]
    ]


def population_stability(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of `current` against `reference` (deciles of the reference).

    Rule of thumb: < 0.1 stable, 0.1-0.2 some shift, > 0.2 a shift worth a look.
    """
    reference = reference[np.isfinite(reference)]
    current = current[np.isfinite(current)]
    if len(reference) == 0 or len(current) == 0:
        return float("nan")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        return 0.0 if np.allclose(current, reference[0]) else float("inf")
    edges[0], edges[-1] = -np.inf, np.inf
    expected = np.histogram(reference, edges)[0] / len(reference)
    actual = np.histogram(current, edges)[0] / len(current)
    expected, actual = np.clip(expected, 1e-4, None), np.clip(actual, 1e-4, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def monitor_population(
    model: ChurnModel, features: pd.DataFrame, probability: np.ndarray, settings: ScoringConfig
) -> dict:
    """PSI of the score and of the model's most important numeric features vs training."""
    report: dict = {"threshold": settings.psi_threshold, "psi": {}, "warnings": []}
    if model.reference is None:
        report["warnings"].append("the model carries no training reference: PSI not computed")
        return report
    report["psi"]["churn_probability"] = population_stability(
        model.reference["probability"].to_numpy(float), probability
    )
    for column in _top_numeric_features(model, settings.psi_top_features):
        report["psi"][column] = population_stability(
            pd.to_numeric(model.reference[column], errors="coerce").to_numpy(float),
            pd.to_numeric(features[column], errors="coerce").to_numpy(float),
        )
    for name, value in report["psi"].items():
        if value > settings.psi_threshold:
            message = f"population shift in {name}: PSI {value:.3f} > {settings.psi_threshold}"
            report["warnings"].append(message)
            log.warning(message)
    return report


def _top_numeric_features(model: ChurnModel, count: int) -> list[str]:
    if model.kind == "lightgbm":
        gain = model.estimator.feature_importance(importance_type="gain")
        ranked = [model.feature_names[i] for i in np.argsort(-gain, kind="stable")]
    else:
        ranked = list(model.feature_names)
    return [c for c in ranked if c in model.spec.numeric][:count]


@contextmanager
def scoring_lock(folder: Path) -> Iterator[None]:
    """An exclusive, non-blocking lock on one scoring date's output folder (`io.output_lock`:
    the lock file sits beside the folder and goes when the run ends, failed or not)."""
    with output_lock(folder):
        yield


def monitoring_json(report: dict) -> str:
    return json.dumps(report, indent=2, sort_keys=True, default=float)
