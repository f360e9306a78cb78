"""Range and enum checks of the typed settings, run when a config is composed (`to_object`).

The schemas in `config.py` give every key its type; these checks give it its range, so
`scoring.contact_list_size=-5` or `label.horizon_days=-30` fail at once with the setting named,
instead of listing 695 contacts or sampling nothing an hour later.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import TypeVar

import pandas as pd

from churnml.contract import CAUSE_FAMILIES, TERMINATION_REASONS, VALUE_TIERS
from churnml.errors import SettingsError

T = TypeVar("T")

# A dataset name becomes a folder name (scores, model names): no separators, no dot first.
DATASET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
CALIBRATIONS = ("beta", "isotonic", "platt", "none")
MODELS = ("auto", "lightgbm", "logreg")
SCHEMES = ("rolling", "single_split")
LABEL_KINDS = ("termination", "inactivity")
DATA_KINDS = ("events", "snapshot")
ENGINES = ("duckdb", "spark")  # features.engine, scoring.engine


class _Checker:
    """Collects every broken setting, so one run reports them all."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def check(self, name: str, value: object, ok: Callable[[object], bool], rule: str) -> None:
        try:
            fine = ok(value)
        except (TypeError, ValueError):
            fine = False
        if not fine:
            self.problems.append(f"{name}={value!r}: must be {rule}")

    def number(
        self,
        name: str,
        value: float,
        low: float | None = None,
        high: float | None = None,
        *,
        strict_low: bool = False,
    ) -> None:
        def ok(v) -> bool:
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                return False
            if low is not None and (v <= low if strict_low else v < low):
                return False
            return high is None or v <= high

        parts = []
        if low is not None:
            parts.append(f"{'>' if strict_low else '>='} {low}")
        if high is not None:
            parts.append(f"<= {high}")
        self.check(name, value, ok, "a finite number " + " and ".join(parts))

    def one_of(self, name: str, value: object, allowed: tuple[str, ...]) -> None:
        self.check(name, value, lambda v: v in allowed, "one of " + ", ".join(allowed))

    def date(self, name: str, value: str | None) -> None:
        if value is not None:
            self.check(name, value, _is_iso_date, "an ISO 8601 date such as 2025-11-01")


def _is_iso_date(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return pd.Timestamp(value) is not pd.NaT
    except (ValueError, OverflowError):
        return False


def _check_common(c: _Checker, cfg) -> None:
    data = cfg.data
    c.check("data.name", data.name, lambda v: bool(DATASET_NAME.match(v)), "letters, digits, _ . -")
    c.one_of("data.kind", data.kind, DATA_KINDS)
    v = cfg.validation
    c.number("validation.max_amount", v.max_amount, 0, strict_low=True)
    c.number("validation.max_call_duration_s", v.max_call_duration_s, 0, strict_low=True)
    c.number("validation.max_volume_mb", v.max_volume_mb, 0, strict_low=True)
    t = getattr(cfg, "tracking", None)  # `churnml validate` has no tracking or evaluation
    if t is not None:
        c.number("tracking.request_timeout_s", t.request_timeout_s, 1, 600)
        c.number("tracking.request_max_retries", t.request_max_retries, 0, 10)
    e = getattr(cfg, "evaluation", None)
    if e is not None:
        c.number("evaluation.offer_cost", e.offer_cost, 0)
        c.number("evaluation.contact_cost", e.contact_cost, 0)
        c.number("evaluation.save_rate", e.save_rate, 0, 1)
        c.number("evaluation.months_kept", e.months_kept, 0, strict_low=True)
        c.number("evaluation.contact_capacity", e.contact_capacity, 0, 1, strict_low=True)


def _check_train(c: _Checker, cfg) -> None:
    data, label, s, m = cfg.data, cfg.label, cfg.sampling, cfg.model
    c.number("data.test_size", data.test_size, 0, 1, strict_low=True)
    c.check("data.test_size", data.test_size, lambda v: v < 1, "< 1")
    c.check("data.cv_folds", data.cv_folds, lambda v: v == 0 or v >= 2, "0 (off) or >= 2")
    c.number("data.cv_repeats", data.cv_repeats, 1)
    c.one_of("label.kind", label.kind, LABEL_KINDS)
    c.one_of("features.engine", cfg.features.engine, ENGINES)
    if cfg.features.engine == "spark":
        # The time-to-churn model reads the customers table with DuckDB (docs/spark.md).
        path = str(cfg.data.path)
        remote = "://" in path and not path.startswith("file:")
        c.check(
            "hazard.enabled",
            cfg.hazard.enabled,
            lambda enabled: not (enabled and remote),
            f"false with features.engine=spark on remote data ({path}): the time-to-churn "
            "model reads the customers table with DuckDB",
        )
    c.number("label.horizon_days", label.horizon_days, 0, 3660, strict_low=True)
    c.number("label.gap_days", label.gap_days, 0, 3660)
    for reason in label.reasons:
        c.one_of("label.reasons[]", reason, TERMINATION_REASONS)
    c.number("sampling.min_history_days", s.min_history_days, 0)
    c.number("sampling.min_tenure_days", s.min_tenure_days, 0)
    c.number("sampling.test_cutoffs", s.test_cutoffs, 1)
    c.number("sampling.validation_cutoffs", s.validation_cutoffs, 1)
    c.number("sampling.max_train_cutoffs", s.max_train_cutoffs, 1)
    c.number("sampling.negative_sample_rate", s.negative_sample_rate, 0, 1, strict_low=True)
    c.one_of("sampling.scheme", s.scheme, SCHEMES)
    c.number("sampling.folds", s.folds, 1)
    c.date("sampling.start", s.start)
    c.date("sampling.end", s.end)
    for cutoff in s.cutoffs:
        c.date("sampling.cutoffs[]", cutoff)
    c.one_of("model.name", m.name, MODELS)
    c.one_of("model.calibration", m.calibration, CALIBRATIONS)
    c.number("model.num_boost_round", m.num_boost_round, 1)
    c.number("model.early_stopping_rounds", m.early_stopping_rounds, 0)
    c.number("model.search_budget_s", m.search_budget_s, 0)
    c.number("model.search_folds", m.search_folds, 2)
    c.number("model.search_max_trials", m.search_max_trials, 0)
    x = cfg.explain
    c.number("explain.max_rows", x.max_rows, 1)
    c.number("explain.top_drivers", x.top_drivers, 1)
    c.number("explain.dependence_plots", x.dependence_plots, 0)
    c.number("seed", cfg.seed, 0)


def _check_score(c: _Checker, cfg) -> None:
    c.one_of("scoring.engine", cfg.scoring.engine, ENGINES)
    sc = cfg.scoring
    c.date("scoring.date", sc.date)
    c.check(
        "scoring.model_version",
        sc.model_version,
        lambda v: v is None or (str(v).isdigit() and int(v) >= 1),
        "null or a version number >= 1",
    )
    c.number("scoring.contact_list_size", sc.contact_list_size, 0)
    c.number("scoring.psi_threshold", sc.psi_threshold, 0, strict_low=True)
    c.number("scoring.psi_top_features", sc.psi_top_features, 0)
    c.number("scoring.exact_reasons_rows", sc.exact_reasons_rows, 0)
    c.check(
        "scoring.production_dataset",
        sc.production_dataset,
        lambda v: bool(DATASET_NAME.match(v)),
        "a dataset name (letters, digits, _ . -)",
    )
    for i, rule in enumerate(sc.actions):
        if rule.cause:
            c.one_of(f"scoring.actions[{i}].cause", rule.cause, tuple(CAUSE_FAMILIES))
        for tier in rule.tiers:
            c.one_of(f"scoring.actions[{i}].tiers[]", tier, VALUE_TIERS)


EXIT_TYPES = ("voluntary", "port-out", "silence", "non-payment", "other")


def _check_lost(c: _Checker, cfg) -> None:
    _check_score(c, cfg)
    lost, w = cfg.lost, cfg.winback
    c.number("silence.horizon_days", cfg.silence.horizon_days, 0, 3660, strict_low=True)
    c.number("lost.port_out_window_days", lost.port_out_window_days, 0, 3660)
    for days in lost.lookback_days:
        c.number("lost.lookback_days[]", days, 0, 3660, strict_low=True)
    c.number("lost.score_staleness_days", lost.score_staleness_days, 0, 3660)
    c.number("lost.contact_days", lost.contact_days, 0, 3660)
    c.number("lost.lifetime_months", lost.lifetime_months, 0)
    c.number("winback.horizon_months", w.horizon_months, 1, 60)
    c.number("winback.max_months_since_exit", w.max_months_since_exit, 1, 240)
    c.number("winback.test_cutoffs", w.test_cutoffs, 1, 60)
    c.number("winback.min_returns", w.min_returns, 1)
    c.number("winback.min_monthly_revenue", w.min_monthly_revenue, 0)
    c.number("winback.value_months", w.value_months, 0, strict_low=True)
    c.number("winback.list_size", w.list_size, 0)
    for exit_type in w.exclude_exit_types:
        c.one_of("winback.exclude_exit_types[]", exit_type, EXIT_TYPES)
    for cause in w.offers:
        c.one_of("winback.offers (cause)", cause, tuple(CAUSE_FAMILIES))
    c.number("seed", cfg.seed, 0)


HAZARD_METRICS = (
    "hazard_test_concordance",
    "hazard_test_ibs_skill",
    "hazard_test_auc_30d",
    "hazard_test_auc_90d",
)
CONTACT_RANKINGS = ("expected_profit", "lifetime_value_at_risk")


def _check_hazard(c: _Checker, h) -> None:
    """The time-to-churn settings (`hazard` group), for training and scoring alike."""
    c.number("hazard.months", h.months, 1, 120)
    for days in h.horizons_days:
        c.number("hazard.horizons_days[]", days, 1, strict_low=False)
        c.check(
            "hazard.horizons_days[]",
            days,
            lambda d: d / (365.25 / 12) <= h.months + 1e-9,
            f"at most the curve's span of hazard.months={h.months} months",
        )
    c.number("hazard.max_rows", h.max_rows, 1000)
    c.number("hazard.num_boost_round", h.num_boost_round, 1)
    c.number("hazard.early_stopping_rounds", h.early_stopping_rounds, 1)
    c.number("hazard.test_follow_up_days", h.test_follow_up_days, 1)
    c.number("hazard.margin_rate", h.margin_rate, 0, 1)
    c.number("hazard.annual_discount_rate", h.annual_discount_rate, 0, 1)
    c.one_of("hazard.promotion_metric", h.promotion_metric, HAZARD_METRICS)
    c.one_of("hazard.contact_ranking", h.contact_ranking, CONTACT_RANKINGS)
    for tier in h.high_tiers:
        c.one_of("hazard.high_tiers[]", tier, VALUE_TIERS)


def _check_review(c: _Checker, cfg) -> None:
    r = cfg.review
    for k in r.months:
        c.number("review.months[]", k, 1, 24)
    c.check("review.months", r.months, lambda v: len(v) > 0, "at least one month")
    c.number("review.confidence", r.confidence, 0.5, 0.999)
    c.number("review.min_group_size", r.min_group_size, 1)
    c.number("review.min_effect", r.min_effect, 0, 1, strict_low=True)
    for segment in r.segments:
        c.one_of("review.segments[]", segment, ("offer", "channel", "value_tier", "cause_family"))
    for reason in cfg.label.reasons:
        c.one_of("label.reasons[]", reason, TERMINATION_REASONS)


def check_settings(cfg: T) -> T:
    """Check a typed train, score or validate config; raise SettingsError naming every bad
    setting."""
    from churnml.config import LostConfig, ScoreConfig, TrainConfig

    c = _Checker()
    _check_common(c, cfg)
    if getattr(cfg, "hazard", None) is not None:
        _check_hazard(c, cfg.hazard)
    if isinstance(cfg, TrainConfig):
        _check_train(c, cfg)
    elif isinstance(cfg, ScoreConfig):
        _check_score(c, cfg)
    elif isinstance(cfg, LostConfig):
        _check_lost(c, cfg)
    up = getattr(cfg, "uplift", None)
    if up is not None:
        c.one_of("uplift.learner", up.learner, ("auto", "t_learner", "x_learner"))
        c.number("uplift.horizon_months", up.horizon_months, 1, 24)
        c.number("uplift.test_share", up.test_share, 0, 0.9, strict_low=True)
        c.number("uplift.test_blocks", up.test_blocks, 1)
        c.number("uplift.rounds", up.rounds, 1)
        c.number("uplift.min_group_rows", up.min_group_rows, 1)
        c.number("uplift.capacity_share", up.capacity_share, 0, 1, strict_low=True)
        c.number("uplift.harm_threshold", up.harm_threshold, 0)
        c.number("uplift.harm_confidence", up.harm_confidence, 0.5, 1, strict_low=True)
        c.number("uplift.calibration_bins", up.calibration_bins, 2)
    review = getattr(cfg, "review", None)
    if review is not None:
        _check_review(c, cfg)
    if c.problems:
        raise SettingsError("bad settings:\n" + "\n".join(c.problems))
    return cfg


def apply_tracking_timeouts(tracking) -> None:
    """Bound how long MLflow waits for a tracking server (it retries for minutes by default).

    MLflow reads these environment variables on every request; one the operator set wins.
    """
    import os

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(tracking.request_timeout_s)))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(int(tracking.request_max_retries)))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
