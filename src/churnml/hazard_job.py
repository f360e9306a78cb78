"""The time-to-churn model in the jobs: train, judge, log, register (training) and score.

`jobs.run_training` calls `train_hazard` after the churn model and `finish_promotion` as its
last step; `jobs.run_scoring` calls `load_for_scoring`, `playbook_facts` and `attach_scores`.
The registered model is `<churn model name>_hazard` (`churnml_telco_sim_hazard`), with the
churn model's champion rules (`churnml.promotion`) judged on `hazard.promotion_metric`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from churnml import tracking
from churnml.config import HazardConfig, ScoreConfig, TrackingConfig, TrainConfig
from churnml.contract import VALUE_SEGMENTS
from churnml.hazard import (
    DAYS_PER_MONTH,
    HazardModel,
    churn_probabilities,
    expected_remaining_months,
    fit_hazard,
    lifetime_value,
    lifetime_value_at_risk,
)
from churnml.hazard_eval import (
    evaluate_curves,
    outcomes,
    plot_brier,
    plot_calibration,
    plot_curves_by,
)
from churnml.io import read_table
from churnml.model import TrainingError
from churnml.promotion import Decision, ModelFacts, decide_promotion
from churnml.scoring import NO_ACTION, value_tiers
from churnml.simulate.truth import truth_path, window_probability
from churnml.tracking import NoChampionError

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "hazard_model"
SUFFIX = "_hazard"
# The value x potential matrix: (current value high, lifetime value high) -> segment.
SEGMENTS = dict(
    zip(
        ((True, True), (True, False), (False, True), (False, False)),
        VALUE_SEGMENTS,
        strict=True,
    )
)
SCORE_COLUMNS = (
    "expected_remaining_months",
    "lifetime_value",
    "lifetime_value_at_risk",
    "value_segment",
    "hazard_model_version",
)
CONTACT_RANKINGS = ("expected_profit", "lifetime_value_at_risk")


def hazard_tracking(tracking_cfg: TrackingConfig) -> TrackingConfig:
    """The churn model's tracking settings with the hazard model's registered name."""
    return replace(
        tracking_cfg, registered_model_name=f"{tracking_cfg.registered_model_name}{SUFFIX}"
    )


# --- what scoring and the report compute from the curves -------------------------------------


def time_to_churn_columns(
    survival: np.ndarray,
    monthly_revenue: np.ndarray,
    value_tier: np.ndarray,
    customer_id: np.ndarray,
    settings: HazardConfig,
    tier_cuts: list[float] | tuple[float, ...],
) -> pd.DataFrame:
    """Per customer: churn probability per horizon, expected remaining months, lifetime value
    (and at risk), lifetime-value tier and the value segment."""
    columns: dict[str, np.ndarray] = dict(churn_probabilities(survival, settings.horizons_days))
    columns["expected_remaining_months"] = expected_remaining_months(survival)
    args = (monthly_revenue, settings.margin_rate, settings.annual_discount_rate)
    ltv = lifetime_value(survival, *args)
    columns["lifetime_value"] = ltv
    columns["lifetime_value_at_risk"] = lifetime_value_at_risk(survival, *args)
    # The lifetime-value tier: the value tiers' own rule (features.account.value_tier_sql).
    ltv_tier = value_tiers(ltv, customer_id, tier_cuts)
    columns["lifetime_value_tier"] = ltv_tier
    high = set(settings.high_tiers)
    now_high = pd.Series(value_tier).isin(high).to_numpy()
    later_high = pd.Series(ltv_tier).isin(high).to_numpy()
    columns["value_segment"] = np.array(
        [SEGMENTS[(bool(a), bool(b))] for a, b in zip(now_high, later_high, strict=True)],
        dtype=object,
    )
    return pd.DataFrame(columns)


def _revenue(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column in frame:
        return pd.to_numeric(frame[column], errors="coerce").to_numpy(float)
    return np.full(len(frame), np.nan)


def _tiers(frame: pd.DataFrame, revenue: np.ndarray, cuts) -> np.ndarray:
    if "value_tier" in frame:
        return frame["value_tier"].astype(object).to_numpy()
    return value_tiers(revenue, frame["customer_id"].to_numpy(), cuts)


# --- training ---------------------------------------------------------------------------------


@dataclass
class HazardResult:
    """What the training job keeps of the hazard stage."""

    model: HazardModel
    metrics: dict[str, float]
    version: str | None = None
    decision: Decision = field(default_factory=lambda: Decision(False, "not registered"))
    tracking: TrackingConfig | None = None


def _test_cutoff(cutoffs: list[pd.Timestamp], as_of: pd.Timestamp, days: int):
    """The latest cutoff with `days` observed after it and an earlier cutoff to learn from."""
    usable = [c for c in cutoffs if c + pd.Timedelta(days=days) <= as_of and c > min(cutoffs)]
    return max(usable) if usable else None


def _truth(dataset_dir: Path, keys: pd.DataFrame, horizons: list[int], follow_days: float):
    if truth_path(dataset_dir) is None:
        return None
    return {
        days: window_probability(dataset_dir, keys, days).to_numpy(float)
        for days in horizons
        if days <= follow_days
    }


def _judge(
    fit_model: HazardModel,
    frame: pd.DataFrame,
    cutoff: pd.Timestamp,
    customers: pd.DataFrame,
    dataset_dir: Path,
    as_of: pd.Timestamp,
    cfg: TrainConfig,
    prefix: str,
):
    keys = frame[frame["cutoff"] == cutoff].reset_index(drop=True)
    survival = fit_model.survival(keys)
    out = outcomes(keys, customers, as_of, cfg.hazard.months, cfg.label.reasons)
    truth = _truth(
        dataset_dir, keys[["customer_id", "cutoff"]], cfg.hazard.horizons_days, out.follow_days
    )
    evaluation = evaluate_curves(
        survival, fit_model.baseline, out, cfg.hazard.horizons_days, prefix, truth
    )
    return keys, survival, evaluation


def _settings(model: HazardModel, cfg: TrainConfig, as_of: pd.Timestamp) -> None:
    model.settings.update(
        {
            "features": asdict(cfg.features),
            # What the model predicts, for the champion rules (ModelFacts): exits counted over
            # the curve's span.
            "label": {
                "kind": "time_to_churn",
                "horizon_days": round(cfg.hazard.months * DAYS_PER_MONTH),
                "gap_days": 0,
                "reasons": list(cfg.label.reasons),
            },
            "min_tenure_days": cfg.sampling.min_tenure_days,
            "data_kind": cfg.data.kind,
            "months": cfg.hazard.months,
            "horizons_days": list(cfg.hazard.horizons_days),
            "currency": cfg.data.currency,
            "trained_through": as_of.isoformat(),
        }
    )


def train_hazard(
    cfg: TrainConfig,
    dataset_dir: Path,
    frame: pd.DataFrame | None,
    feature_columns: list[str],
    as_of: pd.Timestamp,
) -> HazardResult | None:
    """Fit, judge out of time, log and register the hazard model (None: skipped, with why).

    The out-of-time fold: a model learns from the cutoffs before the test cutoff with every
    month censored at the test cutoff (it sees nothing after it), and is judged on the test
    cutoff's customers, whose months are observed up to `as_of`. The registered model is then
    refit on every row, censored at `as_of`, for the fold's early-stopped rounds.
    """
    settings = cfg.hazard
    if not settings.enabled:
        log.info("time-to-churn model off (hazard.enabled=false)")
        return None
    if frame is None or "cutoff" not in frame:
        log.info("time-to-churn model skipped: it needs event data with cutoffs")
        return None
    started = time.perf_counter()
    frame = frame.reset_index(drop=True)
    frame["cutoff"] = pd.to_datetime(frame["cutoff"])
    customers = read_table(
        dataset_dir, "customers", ["customer_id", "terminated_at", "termination_reason"]
    )
    cutoffs = sorted(frame["cutoff"].unique())
    cutoffs = [pd.Timestamp(c) for c in cutoffs]
    test_cutoff = _test_cutoff(cutoffs, as_of, settings.test_follow_up_days)
    if test_cutoff is None:
        test_cutoff = _test_cutoff(cutoffs, as_of, 31)
        if test_cutoff is not None:
            log.warning(
                "time-to-churn test cutoff %s: the history leaves no cutoff with %d days "
                "observed after it, so the test covers %d days (the longer horizons are not "
                "judged)",
                test_cutoff.date(),
                settings.test_follow_up_days,
                (as_of - test_cutoff).days,
            )
    if test_cutoff is None:
        log.warning(
            "time-to-churn model skipped: no cutoff has a month observed after it and an "
            "earlier cutoff to learn from (%d cutoffs up to %s)",
            len(cutoffs),
            as_of.date(),
        )
        return None
    reasons = list(cfg.label.reasons)
    fold = fit_hazard(frame, feature_columns, customers, test_cutoff, settings, reasons, cfg.seed)
    _, survival, evaluation = _judge(
        fold.model, frame, test_cutoff, customers, dataset_dir, as_of, cfg, "hazard_test_"
    )
    metrics = {
        **evaluation.metrics,
        "hazard_fold_rows": float(fold.rows),
        "hazard_fold_rounds": float(fold.best_iteration),
    }
    figures = {"hazard/plots/brier.png": plot_brier(evaluation.brier, f"Test {test_cutoff.date()}")}
    for days, table in evaluation.calibration.items():
        tracking.log_frame(table, f"hazard/evaluation/calibration_{days}d.csv")
        figures[f"hazard/plots/calibration_{days}d.png"] = plot_calibration(
            table, days, f"Test {test_cutoff.date()}"
        )
    tracking.log_frame(evaluation.brier, "hazard/evaluation/brier.csv")
    keys = frame[frame["cutoff"] == test_cutoff].reset_index(drop=True)
    for column, label in (("value_tier", "value tier"), ("lifecycle_stage", "life-cycle stage")):
        if column in keys:
            figures[f"hazard/plots/survival_by_{column}.png"] = plot_curves_by(
                survival, keys[column], f"Predicted survival by {label} ({test_cutoff.date()})"
            )
    long_cutoff = _test_cutoff(cutoffs, as_of, max(settings.horizons_days))
    if settings.long_fold and long_cutoff is not None and long_cutoff != test_cutoff:
        long = fit_hazard(
            frame, feature_columns, customers, long_cutoff, settings, reasons, cfg.seed
        )
        _, _, long_eval = _judge(
            long.model, frame, long_cutoff, customers, dataset_dir, as_of, cfg, "hazard_long_test_"
        )
        metrics.update(long_eval.metrics)
        for days, table in long_eval.calibration.items():
            tracking.log_frame(table, f"hazard/evaluation/long_calibration_{days}d.csv")
            figures[f"hazard/plots/long_calibration_{days}d.png"] = plot_calibration(
                table, days, f"Test {long_cutoff.date()} (learnt before it)"
            )
    refit = fit_hazard(
        frame, feature_columns, customers, as_of, settings, reasons, cfg.seed, fold.best_iteration
    )
    model = refit.model
    _settings(model, cfg, as_of)
    model.settings["test_cutoff"] = test_cutoff.isoformat()
    metrics["hazard_refit_rows"] = float(refit.rows)
    elapsed = time.perf_counter() - started  # the training job logs the stage's time
    tracking.log_metrics(metrics)
    for artifact, figure in figures.items():
        tracking.log_figure(figure, artifact)
    tracking.log_text(
        _what_it_shows(test_cutoff, long_cutoff, as_of, settings), "hazard/what_it_shows.txt"
    )
    import matplotlib.pyplot as plt

    plt.close("all")
    result = HazardResult(model, metrics)
    if cfg.tracking.register:
        result.tracking = hazard_tracking(cfg.tracking)
        result.version, result.decision = _register(
            model, frame, customers, test_cutoff, metrics, cfg, result.tracking, dataset_dir, as_of
        )
    log.info(
        "time-to-churn model: concordance %.3f, 90-day AUC %s, in %.1f s",
        metrics.get("hazard_test_concordance", float("nan")),
        f"{metrics['hazard_test_auc_90d']:.3f}" if "hazard_test_auc_90d" in metrics else "n/a",
        elapsed,
    )
    return result


def _what_it_shows(test_cutoff, long_cutoff, as_of, settings: HazardConfig) -> str:
    text = (
        f"Test cutoff {test_cutoff.date()}: a model that learnt only the months before it "
        f"(censored there) is judged on its customers' next months up to {as_of.date()}. "
    )
    if settings.long_fold and long_cutoff is not None and long_cutoff != test_cutoff:
        text += (
            f"Long horizons: a model that learnt the months before {long_cutoff.date()} is "
            f"judged on that cutoff's customers (hazard_long_test_*). "
        )
    return text + "The registered model is refit on every month observed up to as_of."


def _register(
    model: HazardModel,
    frame: pd.DataFrame,
    customers: pd.DataFrame,
    test_cutoff: pd.Timestamp,
    metrics: dict[str, float],
    cfg: TrainConfig,
    tracking_cfg: TrackingConfig,
    dataset_dir: Path,
    as_of: pd.Timestamp,
) -> tuple[str, Decision]:
    """Register as challenger; decide on the champion with the churn model's rules."""
    metric = cfg.hazard.promotion_metric
    if metric not in metrics:
        raise TrainingError(f"hazard.promotion_metric {metric!r} is not a hazard test metric")
    challenger = ModelFacts.of(model.settings, model.feature_names)
    decision, champion_version = _decide(
        challenger,
        metrics[metric],
        frame,
        customers,
        test_cutoff,
        cfg,
        tracking_cfg,
        dataset_dir,
        as_of,
    )
    keys = frame[frame["cutoff"] == test_cutoff]
    version = log_hazard_model(model, keys.head(5), tracking_cfg.registered_model_name)
    tracking.set_alias(tracking_cfg, tracking_cfg.challenger_alias, version)
    tracking.describe_version(
        tracking_cfg,
        version,
        description=f"Time-to-churn model ({cfg.hazard.months} monthly hazards) on "
        f"{cfg.data.name}; test cutoff {test_cutoff.date()}. Registry: {decision.reason}.",
        tags={
            "dataset": cfg.data.name,
            "data_kind": cfg.data.kind,
            "model_kind": model.kind,
            "features": str(len(model.feature_names)),
            "promotion_decision": decision.reason,
            **{
                k: f"{v:.4f}"
                for k, v in metrics.items()
                if k in (metric, "hazard_test_auc_90d", "hazard_test_ibs_skill")
            },
        },
    )
    tracking.log_dict(
        {
            "decision": decision.reason,
            "promote": decision.promote,
            "challenger_version": version,
            "champion_version": champion_version,
        },
        "hazard/registry/decision.json",
    )
    tracking.set_tags({"hazard_promotion": decision.reason})
    log.info("registry: %s v%s: %s", tracking_cfg.registered_model_name, version, decision.reason)
    return version, decision


def _decide(
    challenger: ModelFacts,
    score: float,
    frame: pd.DataFrame,
    customers: pd.DataFrame,
    test_cutoff: pd.Timestamp,
    cfg: TrainConfig,
    tracking_cfg: TrackingConfig,
    dataset_dir: Path,
    as_of: pd.Timestamp,
) -> tuple[Decision, str | None]:
    """As the churn model's gate: the champion's recipe (its LightGBM params) is retrained on
    the same fold, censored at the same test cutoff, and scored on the same test rows."""
    metric = cfg.hazard.promotion_metric
    champion_version = tracking.alias_version(tracking_cfg, tracking_cfg.champion_alias)
    if champion_version is None:
        return decide_promotion(challenger, score, metric), None
    try:
        champion_model, _, _ = tracking.load_registered_model(
            tracking_cfg, version=champion_version
        )
    except NoChampionError as error:
        return Decision(False, f"registered as challenger, not promoted: {error}"), champion_version
    champion = ModelFacts.of(champion_model.settings, champion_model.feature_names)
    champion_score, champion_error = None, None
    recipe = champion_model.settings.get("hazard_params")
    if champion == challenger and recipe:
        try:
            refitted = fit_hazard(
                frame,
                champion_model.feature_names,
                customers,
                test_cutoff,
                cfg.hazard,
                list(cfg.label.reasons),
                cfg.seed,
                params=recipe,
            ).model
            _, _, evaluation = _judge(
                refitted, frame, test_cutoff, customers, dataset_dir, as_of, cfg, "hazard_test_"
            )
            champion_score = evaluation.metrics.get(metric)
        except TrainingError as error:
            champion_error = f"its settings could not be retrained on this fold: {error}"
    elif champion == challenger:
        champion_error = "it records no recipe to retrain on this fold"
    decision = decide_promotion(
        challenger,
        score,
        metric,
        champion=champion,
        champion_version=champion_version,
        champion_score=champion_score,
        champion_error=champion_error,
    )
    return decision, champion_version


def finish_promotion(result: HazardResult | None) -> None:
    """The run's last step, beside the churn model's: move the hazard champion alias."""
    if result is None or result.version is None or result.tracking is None:
        return
    if result.decision.promote:
        tracking.set_alias(result.tracking, result.tracking.champion_alias, result.version)
        tracking.set_version_tags(result.tracking, result.version, {"promoted": "automatically"})
        log.info(
            "model %s v%s is now the champion",
            result.tracking.registered_model_name,
            result.version,
        )


class HazardModelPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapper: feature rows in, churn probability per horizon and expected
    remaining months out. Scoring unwraps `.model`."""

    def __init__(self, model: HazardModel):
        self.model = model

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        features = pd.DataFrame(model_input).reset_index(drop=True)
        survival = self.model.survival(features)
        horizons = self.model.settings.get("horizons_days", [30, 90, 180, 365])
        out = pd.DataFrame(churn_probabilities(survival, horizons))
        out["expected_remaining_months"] = expected_remaining_months(survival)
        return out


def log_hazard_model(model: HazardModel, example: pd.DataFrame, name: str) -> str:
    """Log the hazard model as a pyfunc with its code and signature; register it."""
    example = model.spec.as_model_input(example)
    return tracking.log_python_model(HazardModelPyfunc(model), example, name, MODEL_ARTIFACT)


# --- scoring ----------------------------------------------------------------------------------


@dataclass
class ScoringHazard:
    model: HazardModel
    version: str
    run_id: str
    name: str


def load_for_scoring(cfg: ScoreConfig) -> ScoringHazard | None:
    """The hazard champion (same alias or version choice as the churn model's), or None when the
    setting is off or no hazard model is registered (scores then have no time-to-churn columns)."""
    if not cfg.hazard.enabled:
        return None
    tracking_cfg = hazard_tracking(cfg.tracking)
    alias = cfg.scoring.model_alias
    if tracking.alias_version(tracking_cfg, alias) is None:
        log.info(
            "no %s@%s: scores without time-to-churn columns",
            tracking_cfg.registered_model_name,
            alias,
        )
        return None
    model, version, run_id = tracking.load_registered_model(tracking_cfg, alias=alias)
    if not isinstance(model, HazardModel):
        raise NoChampionError(f"{tracking_cfg.registered_model_name} v{version} is no hazard model")
    return ScoringHazard(model, version, run_id, tracking_cfg.registered_model_name)


def score_columns(
    hazard: ScoringHazard, features: pd.DataFrame, cfg: ScoreConfig, tier_cuts
) -> pd.DataFrame:
    """The time-to-churn columns for every feature row (customer_id first)."""
    started = time.perf_counter()
    survival = hazard.model.survival(features)
    revenue = _revenue(features, cfg.scoring.revenue_feature)
    tiers = _tiers(features, revenue, tier_cuts)
    ids = features["customer_id"].astype(str).to_numpy()
    columns = time_to_churn_columns(survival, revenue, tiers, ids, cfg.hazard, tier_cuts)
    columns.insert(0, "customer_id", ids)
    columns["hazard_model_version"] = str(hazard.version)
    log.info(
        "time-to-churn curves for %d customers in %.1f s",
        len(columns),
        time.perf_counter() - started,
    )
    return columns


def attach_scores(scores: pd.DataFrame, columns: pd.DataFrame, settings: HazardConfig):
    """The scores with the time-to-churn columns (after the contract's and the extras), ranked
    by `hazard.contact_ranking`."""
    extra = [c for c in columns.columns if c != "customer_id" and c != "lifetime_value_tier"]
    merged = scores.merge(columns[["customer_id", *extra]], on="customer_id", how="left")
    if settings.contact_ranking == "lifetime_value_at_risk":
        merged = rank_by_value_at_risk(merged)
    return merged


def rank_by_value_at_risk(scores: pd.DataFrame) -> pd.DataFrame:
    """`priority_rank` by lifetime value at risk: customers worth calling (an action and a
    positive expected profit of the call) first, as in `scoring.rank_by_priority`."""
    callable_rows = (scores["action"] != NO_ACTION) & (scores["expected_profit"] > 0)
    ranked = (
        scores.assign(_callable=callable_rows)
        .sort_values(
            ["_callable", "lifetime_value_at_risk", "churn_probability", "customer_id"],
            ascending=[False, False, False, True],
            kind="stable",
        )
        .drop(columns="_callable")
        .reset_index(drop=True)
    )
    ranked["priority_rank"] = np.arange(1, len(ranked) + 1)
    return ranked
