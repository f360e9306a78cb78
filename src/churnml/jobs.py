"""The jobs the pipelines run, as plain functions of a typed config (tests call them directly).

`run_training`: validate -> sample -> build features -> train -> evaluate -> explain -> log,
register and promote. Validation runs before anything is written: a broken contract rule stops
the job with no MLflow run, no model version and no report.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from sklearn.metrics import roc_auc_score

from churnml import evaluation, explain, hazard_job, report, scoring, tracking
from churnml.config import ModelConfig, ScoreConfig, TrainConfig, ValidateConfig
from churnml.errors import NoEligibleCustomersError, exit_code_for
from churnml.features import FeatureParams, build_features, resolve_feature_params
from churnml.io import (
    DatasetError,
    dataset_as_of,
    dataset_fingerprint,
    file_fingerprint,
    output_folder,
    output_lock,
    parse_timestamp,
    publish_folder,
    read_table,
    require_dataset,
    write_atomic,
)
from churnml.model import ChurnModel, TrainingError
from churnml.promotion import Decision, ModelFacts, decide_promotion
from churnml.sampling import (
    Fold,
    Sample,
    eligible_customers,
    event_table_starts,
    sample_customers,
)
from churnml.simulate import SimulationParams, simulate_dataset
from churnml.simulate.truth import truth_path, window_probability
from churnml.snapshot import (
    SnapshotData,
    choose_model,
    cross_validate,
    guess_column_causes,
    read_snapshot,
    split_snapshot,
    summarize_cv,
)
from churnml.tracking import NoChampionError
from churnml.training import RollingFit, fit_rolling, fold_rows, train_model
from churnml.uplift import score_uplift
from churnml.validation import (
    ValidationReport,
    check_dataset,
    check_scores,
    validation_limits,
)

log = logging.getLogger(__name__)

KEY_COLUMNS = ("customer_id", "cutoff")
SAMPLE_COLUMNS = ("split", "label", "exit_reason", "involuntary", "weight")
REVENUE_FEATURE = "arpu_monthly_3m"
REFERENCE_ROWS = 5_000


# Shown first: on the console, in the run's description and on the model version.
HEADLINE_METRICS = (
    "test_roc_auc",
    "test_roc_auc_std",
    "test_pr_auc",
    "test_top_decile_lift",
    "test_ece",
    "test_truth_roc_auc",
    "cv_roc_auc_mean",
)


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    dataset_name: str
    model_name: str
    model_version: str | None
    promoted: bool
    decision: str
    metrics: dict[str, float]
    report_path: Path | None
    hazard_model_version: str | None = None  # the time-to-churn model (churnml.hazard_job)
    hazard_decision: str | None = None


def _timed(stage: str, timings: dict[str, float], started: float) -> None:
    timings[f"time_{stage}_s"] = round(time.perf_counter() - started, 2)
    log.info("stage %s done in %.1f s", stage, timings[f"time_{stage}_s"])


def build_training_frame(
    dataset_dir: Path, sample: Sample, cfg: TrainConfig
) -> tuple[pd.DataFrame, list[str]]:
    """Sample rows joined with their point-in-time features; return the frame and feature list."""
    features = build_features(dataset_dir, sample.rows[[*KEY_COLUMNS, "weight"]], cfg.features)
    frame = sample.rows.merge(features, on=list(KEY_COLUMNS), how="left", validate="one_to_one")
    frame = frame.copy()  # one consolidated block: later column additions stay cheap
    feature_columns = [c for c in features.columns if c not in KEY_COLUMNS]
    if not feature_columns:
        raise TrainingError("no features could be built from the dataset's tables")
    return frame, feature_columns


def _attach_scoring_context(
    model: ChurnModel,
    test: pd.DataFrame,
    cfg: TrainConfig,
    trained_through: pd.Timestamp | None = None,
) -> None:
    """Record what scoring must repeat, and a reference sample for population stability.

    Also what the champion gate needs later: the model settings (to retrain the recipe on a
    later challenger's fold) and `trained_through`, the end of the last label window the
    model learnt from (rows whose label window starts before it are not unseen).
    """
    model.settings = {
        "features": asdict(cfg.features),
        "label": asdict(cfg.label),
        "min_tenure_days": cfg.sampling.min_tenure_days,
        "data_kind": cfg.data.kind,
        "model": asdict(cfg.model),
        "currency": cfg.data.currency,  # the served model's reasons name it
    }
    if trained_through is not None:
        model.settings["trained_through"] = trained_through.isoformat()
    if cfg.data.kind == "snapshot":  # reasons and reports speak in causes, not "other"
        model.settings["column_causes"] = guess_column_causes(
            model.feature_names, cfg.data.column_causes, cfg.data.guess_causes
        )
    reference = test.sample(n=min(len(test), REFERENCE_ROWS), random_state=cfg.seed)
    model.reference = (
        reference[model.feature_names]
        .assign(probability=model.predict_proba(reference))
        .reset_index(drop=True)
    )


def _split_tags(part: pd.DataFrame) -> dict[str, str]:
    """What an MLflow dataset input records of one split: rows, churners, cutoffs."""
    tags = {"rows": str(len(part)), "churners": str(int(part["label"].sum()))}
    if "cutoff" in part:
        cutoffs = sorted(pd.to_datetime(part["cutoff"]).dt.date.unique())
        tags["cutoffs"] = ", ".join(str(c) for c in cutoffs)[:4000]
    return tags


def _run_description(
    cfg: TrainConfig, metrics: dict[str, float], version: str | None, decision: Decision
) -> str:
    """The run's description in the MLflow UI: the headline figures first."""
    lines = [f"**{cfg.model.name} on {cfg.data.name}** ({cfg.data.kind} data)", ""]
    lines += [f"- {k}: {metrics[k]:.4f}" for k in HEADLINE_METRICS if k in metrics]
    if version is not None:
        lines += [
            "",
            f"Registered as {cfg.tracking.registered_model_name} v{version}: {decision.reason}",
        ]
    return "\n".join(lines)


def _monthly_revenue(frame: pd.DataFrame) -> np.ndarray:
    if REVENUE_FEATURE in frame:
        return pd.to_numeric(frame[REVENUE_FEATURE], errors="coerce").to_numpy(dtype=float)
    return np.ones(len(frame))


def _test_outputs(
    part: pd.DataFrame, p: np.ndarray, cfg: TrainConfig
) -> tuple[dict[str, float], dict[str, pd.DataFrame], dict]:
    """Profit, AUC by segment and the plots of one test cutoff's scores."""
    y = part["label"].to_numpy()
    scored = part.assign(probability=p)
    tables = {"auc_by_segment": evaluation.auc_by_segment(scored, cfg.evaluation.segment_columns)}
    curve = evaluation.profit_curve(y, p, _monthly_revenue(part), cfg.evaluation)
    metrics = {
        "test_best_profit": curve.best_profit,
        "test_best_contact_fraction": curve.best_fraction,
    }
    title = f"Test cutoff {part['cutoff'].iloc[0].date()}" if "cutoff" in part else "Test split"
    figures = {
        "plots/roc.png": evaluation.plot_roc(y, p, title),
        "plots/gain_lift.png": evaluation.plot_gain_lift(y, p, title),
        "plots/reliability.png": evaluation.plot_reliability(y, p, title),
        "plots/score_distribution.png": evaluation.plot_score_distribution(y, p, title),
        "plots/profit_curve.png": evaluation.plot_profit_curve(curve, title),
    }
    return metrics, tables, figures


def _evaluate(
    model: ChurnModel, splits: dict[str, pd.DataFrame], cfg: TrainConfig
) -> tuple[dict[str, float], dict[str, pd.DataFrame], dict]:
    metrics: dict[str, float] = {}
    tables: dict[str, pd.DataFrame] = {}
    figures = {}
    for prefix, name in (("val", "validation"), ("test", "test")):
        part = splits[name]
        y = part["label"].to_numpy()
        p = model.predict_proba(part)
        metrics.update(evaluation.classification_metrics(y, p, prefix))
        if prefix == "test":
            extra, tables, figures = _test_outputs(part, p, cfg)
            metrics.update(extra)
    return metrics, tables, figures


def _evaluate_rolling(
    rolling: RollingFit, truth: dict[pd.Timestamp, float], cfg: TrainConfig
) -> tuple[dict[str, float], dict[str, pd.DataFrame], dict, float]:
    """Test metrics from the fold models only: each scores a cutoff it never saw.

    `test_<metric>` is the mean over folds, `test_<metric>_std` its spread (ddof 1; 0 with one
    fold); `evaluation/folds.csv` has one row per fold. Plots, profit and AUC by segment are of
    the newest fold. Also returns the newest fold's promotion metric: the challenger's score
    on the rows the champion is compared on (`_champion_decision`).
    """
    rows = []
    for index, fit in enumerate(rolling.folds, start=1):
        y = fit.test["label"].to_numpy()
        p = fit.model.predict_proba(fit.test)
        fold_metrics = evaluation.classification_metrics(y, p, "test")
        if fit.validation["label"].nunique() == 2:
            fold_metrics.update(
                evaluation.classification_metrics(
                    fit.validation["label"].to_numpy(),
                    fit.model.predict_proba(fit.validation),
                    "val",
                )
            )
        if fit.fold.test_cutoff in truth:
            fold_metrics["test_truth_roc_auc"] = truth[fit.fold.test_cutoff]
        rows.append(
            {
                "fold": index,
                "tested_cutoff": str(fit.fold.test_cutoff.date()),
                "validation_cutoff": (
                    str(fit.fold.validation_cutoff.date())
                    if fit.fold.validation_cutoff is not None
                    else "customer hold-out"
                ),
                "train_cutoffs": f"{fit.fold.train_cutoffs[0].date()} to "
                f"{fit.fold.train_cutoffs[-1].date()} ({len(fit.fold.train_cutoffs)})",
                "embargoed": fit.fold.embargoed,
                "train_rows": fit.train_rows,
                "best_iteration": fit.best_iteration,
                **fold_metrics,
            }
        )
    folds = pd.DataFrame(rows)
    metrics: dict[str, float] = {
        "test_folds": float(len(folds)),
        "refit_train_rows": float(len(rolling.refit_rows)),
        "refit_train_cutoffs": float(rolling.refit_rows["cutoff"].nunique()),
    }
    if rolling.rounds is not None:
        metrics["refit_num_boost_round"] = float(rolling.rounds)
    for column in folds.columns:
        if column.startswith("val_") and folds[column].notna().all():
            metrics[column] = float(folds[column].mean())  # early stopping rows, not a test
        if column.startswith("test_"):
            values = folds[column].dropna().to_numpy(float)
            if len(values) < len(folds):
                continue  # a mean over some folds only would not be on the same rows
            metrics[column] = float(values.mean())
            if column in ("test_roc_auc", "test_pr_auc", "test_truth_roc_auc"):
                metrics[f"{column}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            for index, value in enumerate(values, start=1):
                metrics[f"fold{index}_{column}"] = float(value)
    newest = rolling.folds[0]
    extra, tables, figures = _test_outputs(
        newest.test, newest.model.predict_proba(newest.test), cfg
    )
    metrics.update(extra)
    tables["folds"] = folds
    promotion_score = rows[0].get(cfg.tracking.promotion_metric)
    if promotion_score is None:
        raise TrainingError(
            f"tracking.promotion_metric {cfg.tracking.promotion_metric!r} is not a test metric"
        )
    return metrics, tables, figures, float(promotion_score)


def _champion_decision(
    cfg: TrainConfig,
    model: ChurnModel,
    test: pd.DataFrame,
    challenger_score: float,
    recipe_rows: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> tuple[Decision, str | None]:
    """Score the current champion on the challenger's test rows; decide (`churnml.promotion`).

    With rolling evaluation the registered model (the refit) has learnt from every labelled
    cutoff, so no honest score of it exists on labelled rows. The comparison is then on the
    newest fold's test cutoff, and neither side may have seen it:
    - the challenger's score is the newest fold model's (the refit's recipe trained on
      `recipe_rows`, the fold's training and validation rows, without that cutoff);
    - a champion refit on earlier data has usually learnt labels that overlap that cutoff's
      window (retrained monthly, its last label window ends a month into the test window),
      which would favour it. So when the champion records its settings, its recipe is
      retrained on the same `recipe_rows` and scored on the same test rows: settings against
      settings, same data, neither seeing the test cutoff. A champion without recorded
      settings is scored itself when its labels end before the test cutoff, and kept (with
      the reason) when they do not.

    Returns the decision and the champion's version (None when there is none).
    """
    metric = cfg.tracking.promotion_metric
    challenger = ModelFacts.of(model.settings, model.feature_names)
    champion_version = tracking.alias_version(cfg.tracking, cfg.tracking.champion_alias)
    if champion_version is None:
        return decide_promotion(challenger, challenger_score, metric), None
    try:
        champion_model, _, _ = tracking.load_registered_model(
            cfg.tracking, version=champion_version
        )
    except NoChampionError as error:
        return (
            Decision(False, f"registered as challenger, not promoted: {error}"),
            champion_version,
        )
    champion = ModelFacts.of(champion_model.settings, champion_model.feature_names)
    champion_score, champion_error, how = None, None, ""
    settings = champion_model.settings
    through = settings.get("trained_through")
    test_cutoff = pd.to_datetime(test["cutoff"]).min() if "cutoff" in test else None
    saw = through is not None and test_cutoff is not None and pd.Timestamp(through) > test_cutoff
    if champion == challenger and recipe_rows is not None and settings.get("model"):
        recipe = ModelConfig(**settings["model"])
        try:
            refitted = train_model(*recipe_rows, champion_model.feature_names, recipe, cfg.seed)
            p = refitted.predict_proba(test)
        except TrainingError as error:
            champion_error = f"its settings could not be retrained on this fold: {error}"
        else:
            scores = evaluation.classification_metrics(test["label"].to_numpy(), p, "test")
            champion_score = scores.get(metric)
            how = (
                f" (the champion's settings ({recipe.name}) retrained on the same fold's "
                "training rows: neither model saw the test cutoff)"
            )
    elif champion == challenger and saw and recipe_rows is not None:
        champion_error = (
            f"it learnt labels up to {pd.Timestamp(through).date()}, after the test cutoff "
            f"{test_cutoff.date()}, and records no settings to retrain; a score on these rows "
            "would favour it. Promote by hand if the fold figures justify it"
        )
    elif champion == challenger:
        try:
            p = champion_model.predict_proba(test)
        except TrainingError as error:
            champion_error = str(error)
        else:
            scores = evaluation.classification_metrics(test["label"].to_numpy(), p, "test")
            if metric not in scores:
                raise TrainingError(f"tracking.promotion_metric {metric!r} is not a test metric")
            champion_score = scores[metric]
    decision = decide_promotion(
        challenger,
        challenger_score,
        metric,
        champion=champion,
        champion_version=champion_version,
        champion_score=champion_score,
        champion_error=champion_error,
    )
    if how and champion_score is not None:
        decision = Decision(decision.promote, decision.reason + how)
    return decision, champion_version


@dataclass
class PreparedData:
    """The labelled splits a model is trained and judged on, and how they were made."""

    splits: dict[str, pd.DataFrame]
    feature_columns: list[str]
    provenance: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)  # cross-validation, simulator truth
    # Rolling evaluation: every labelled row, the folds (newest first) and the refit's cutoffs.
    # splits then holds the refit's rows ("train") and the newest fold's test rows ("test").
    frame: pd.DataFrame | None = None
    folds: tuple[Fold, ...] = ()
    refit_cutoffs: tuple[pd.Timestamp, ...] = ()
    model: ModelConfig | None = None  # model=auto: the settings it chose


def _event_provenance(sample: Sample, splits: dict[str, pd.DataFrame], cfg: TrainConfig):
    train_cutoffs = splits["train"]["cutoff"]
    return {
        "Data window": f"{sample.events_start.date()} to {sample.as_of.date()}",
        "Training cutoffs": f"{train_cutoffs.min().date()} to {train_cutoffs.max().date()} "
        f"({train_cutoffs.nunique()})",
        "Validation cutoff": str(splits["validation"]["cutoff"].max().date()),
        "Test cutoff": str(splits["test"]["cutoff"].max().date()),
        "Label": f"{cfg.label.kind}, {cfg.label.horizon_days} days after a "
        f"{cfg.label.gap_days}-day gap ({', '.join(cfg.label.reasons)})",
    }


def _model_card(prepared: PreparedData, metrics: dict, version: str, cfg: TrainConfig):
    splits = prepared.splits
    return {
        "Model": f"{cfg.tracking.registered_model_name} v{version} ({cfg.model.name})",
        "Dataset": cfg.data.name,
        **prepared.provenance,
        f"Rows ({' / '.join(splits)})": " / ".join(f"{len(splits[s]):,}" for s in splits),
        "Test ROC AUC": (
            f"{metrics['test_roc_auc']:.3f} +- {metrics['test_roc_auc_std']:.3f} "
            f"(mean over {int(metrics['test_folds'])} out-of-time folds)"
            if "test_folds" in metrics
            else f"{metrics['test_roc_auc']:.3f}"
        ),
        "Test top-decile lift": f"{metrics['test_top_decile_lift']:.2f}",
        "Test ECE": f"{metrics['test_ece']:.4f}",
    }


def _explain_and_report(
    model: ChurnModel,
    test: pd.DataFrame,
    metrics: dict[str, float],
    card: dict[str, str],
    cfg: TrainConfig,
    champion_run_id: str | None,
    hazard: hazard_job.HazardResult | None = None,
) -> tuple[str, dict[str, pd.DataFrame]]:
    rows = test.sample(n=min(len(test), cfg.explain.max_rows), random_state=cfg.seed)
    rows = rows.sort_index()
    contrib = explain.contributions(model, rows, cfg.explain.attribution)
    labels = rows["label"]
    drivers = explain.driver_table(contrib, labels)
    currency = cfg.explain.currency
    main_causes = explain.customer_reasons(contrib, currency=currency)["main_cause"]
    families = explain.cause_family_table(contrib, drivers, main_causes)
    findings = explain.driver_findings(
        contrib, labels, drivers, cfg.explain.top_drivers, currency=currency
    )
    segment_columns = [c for c in (*cfg.evaluation.segment_columns, "region") if c in rows]
    segments = explain.segment_drivers(
        contrib, labels, rows[segment_columns], main_causes=main_causes
    )
    plan = scoring.retention_plan(
        scoring.sample_plan_frame(model, rows, main_causes, cfg.scoring, cfg.evaluation),
        cfg.evaluation.contact_capacity,
        scale=len(test) / max(len(rows), 1),
    )
    change = None
    if champion_run_id is not None:
        champion_families = tracking.load_run_table(champion_run_id, "drivers/families.parquet")
        if champion_families is not None:
            change = explain.driver_change(families, champion_families)
    top = cfg.explain.top_drivers
    figures = {
        "families": report.plot_family_bar(families),
        "bar": report.plot_driver_bar(drivers, top),
        "beeswarm": report.plot_beeswarm(contrib, top),
    }
    for feature in drivers["feature"].head(cfg.explain.dependence_plots):
        figures[f"dependence_{feature}"] = report.plot_dependence(contrib, feature)
    time_to_churn, hazard_tables = None, {}
    if hazard is not None:
        from churnml.hazard_report import report_section

        time_to_churn, hazard_tables = report_section(
            hazard.model, rows, main_causes, cfg, scale=len(test) / max(len(rows), 1)
        )
    page = report.render_report(
        report.ReportInputs(
            title="Churn loss drivers",
            model_card=card,
            metrics=metrics,
            drivers=drivers,
            families=families,
            findings=findings,
            segments=segments,
            change=change,
            figures=figures,
            plan=plan,
            currency=currency,
            horizon_days=cfg.label.horizon_days,
            contact_capacity=cfg.evaluation.contact_capacity,
            time_to_churn=time_to_churn,
        )
    )
    tables = {
        **{f"time_to_churn_{name}": table for name, table in hazard_tables.items()},
        "drivers": drivers,
        "families": families,
        "findings": findings,
        "segments": segments,
        "plan": plan,
    }
    if change is not None:
        tables["change"] = change
    return page, tables


def _register(
    model: ChurnModel,
    test: pd.DataFrame,
    metrics: dict[str, float],
    prepared: PreparedData,
    cfg: TrainConfig,
    challenger_score: float | None = None,
    recipe_rows: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> tuple[str, Decision, str | None]:
    """Register the model as challenger and decide whether it may become champion.

    `challenger_score`: the challenger's promotion metric on `test` (default: from `metrics`;
    rolling evaluation passes the newest fold's, and that fold's training and validation rows
    as `recipe_rows`, see `_champion_decision`).

    The champion alias itself moves only at the very end of a run whose every stage succeeded
    (`_finish_promotion`): a run that fails or is killed later never leaves a new champion.
    """
    if challenger_score is None:
        challenger_score = metrics[cfg.tracking.promotion_metric]
    decision, champion_version = _champion_decision(cfg, model, test, challenger_score, recipe_rows)
    champion_run_id = (
        tracking.model_version_run_id(cfg.tracking, champion_version) if champion_version else None
    )
    name = cfg.tracking.registered_model_name
    version = tracking.log_model(model, test.head(5), name)
    tracking.set_alias(cfg.tracking, cfg.tracking.challenger_alias, version)
    headline = ", ".join(
        f"{k} {metrics[k]:.4f}" for k in HEADLINE_METRICS if k in metrics and k.startswith("test")
    )
    window = "; ".join(f"{k}: {v}" for k, v in prepared.provenance.items())
    tracking.describe_version(
        cfg.tracking,
        version,
        description=f"{cfg.model.name} on {cfg.data.name}. {window}. Test: {headline}. "
        f"Registry: {decision.reason}.",
        tags={
            "dataset": cfg.data.name,
            "data_kind": cfg.data.kind,
            "model_kind": cfg.model.name,
            "feature_engine": cfg.features.engine,
            "features": str(len(model.feature_names)),
            "promotion_decision": decision.reason,
            **{k: f"{metrics[k]:.4f}" for k in HEADLINE_METRICS if k in metrics},
        },
    )
    tracking.log_dict(
        {
            "decision": decision.reason,
            "promote": decision.promote,
            "challenger_version": version,
            "champion_version": champion_version,
        },
        "registry/decision.json",
    )
    tracking.set_tags({"promotion": decision.reason})
    log.info("registry: %s v%s: %s", name, version, decision.reason)
    return version, decision, champion_run_id


def _finish_promotion(cfg: TrainConfig, version: str, decision: Decision) -> None:
    """The run's last step: move the champion alias when the decision says so."""
    if decision.promote:
        tracking.set_alias(cfg.tracking, cfg.tracking.champion_alias, version)
        tracking.set_version_tags(cfg.tracking, version, {"promoted": "automatically"})
        log.info("model %s v%s is now the champion", cfg.tracking.registered_model_name, version)


def promote_by_hand(cfg: TrainConfig, version: str, reason: str) -> str:
    """`churnml promote`: make a registered version the champion, recording who decided why."""
    if not reason.strip():
        raise DatasetError("churnml promote needs a --reason")
    tracking.setup_tracking(cfg.tracking)
    previous = tracking.alias_version(cfg.tracking, cfg.tracking.champion_alias)
    tracking.require_version(cfg.tracking, version)
    tracking.set_alias(cfg.tracking, cfg.tracking.champion_alias, version)
    tracking.set_version_tags(
        cfg.tracking,
        version,
        {
            "promoted": "by hand",
            "promotion_reason": reason,
            "promoted_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
            "previous_champion": previous or "none",
        },
    )
    was = f"v{previous}" if previous else "none"
    return (
        f"{cfg.tracking.registered_model_name} v{version} is now the champion (was {was}): {reason}"
    )


# The last training data prepared in this process: the trials of a sweep (`churnml tune`, one
# process) share the dataset, labels, sampling and features, so they are built once a sweep.
_PREPARED: dict[str, tuple[PreparedData, FeatureParams, pd.DataFrame]] = {}


def _prepare_events(
    cfg: TrainConfig, dataset_dir: Path, as_of: pd.Timestamp, fingerprint: str
) -> PreparedData:
    """The labelled training data, built once per process for the same inputs (a sweep)."""
    tracking.set_tags({"feature_engine": cfg.features.engine})
    key = hashlib.sha256(
        json.dumps(
            [str(dataset_dir), fingerprint, str(as_of), cfg.seed]
            + [asdict(c) for c in (cfg.label, cfg.sampling, cfg.features)],
            sort_keys=True,
            default=str,
        ).encode()
    ).hexdigest()
    if key in _PREPARED:
        prepared, features, summary = _PREPARED[key]
        log.info("training data as built for the previous trial of this sweep: reused")
        tracking.log_frame(summary, "sample/summary.csv")
        cfg.features = copy.deepcopy(features)
        return copy.deepcopy(prepared)
    prepared, summary = _build_prepared(cfg, dataset_dir, as_of)
    _PREPARED.clear()
    _PREPARED[key] = (copy.deepcopy(prepared), copy.deepcopy(cfg.features), summary)
    return prepared


def _sample_and_features(
    cfg: TrainConfig, dataset_dir: Path, as_of: pd.Timestamp, timings: dict[str, float]
) -> tuple[Sample, pd.DataFrame, list[str]]:
    """The labelled sample and its training frame, on the engine `features.engine` names."""
    if cfg.features.engine == "spark":
        from churnml.spark.training import training_frame_on_spark

        started = time.perf_counter()
        sample, cfg.features, frame, feature_columns = training_frame_on_spark(cfg, as_of)
        tracking.log_frame(sample.summary, "sample/summary.csv")
        _timed("features", timings, started)
        if not feature_columns:
            raise TrainingError("no features could be built from the dataset's tables")
        return sample, frame, feature_columns
    started = time.perf_counter()
    sample = sample_customers(dataset_dir, cfg.label, cfg.sampling, cfg.seed, as_of=as_of)
    tracking.log_frame(sample.summary, "sample/summary.csv")
    _timed("sample", timings, started)

    started = time.perf_counter()
    # Which competitors get their own columns is decided before the latest training cutoff and
    # recorded with the model (`_attach_scoring_context`), so scoring builds the same columns.
    # Rolling evaluation: before the oldest fold's test cutoff, so no fold's columns are
    # chosen from traffic after the cutoff it is tested on.
    latest_train_cutoff = (
        min(f.test_cutoff for f in sample.folds)
        if sample.folds
        else sample.rows.loc[sample.rows["split"] == "train", "cutoff"].max()
    )
    cfg.features = resolve_feature_params(dataset_dir, cfg.features, latest_train_cutoff)
    frame, feature_columns = build_training_frame(dataset_dir, sample, cfg)
    _timed("features", timings, started)
    return sample, frame, feature_columns


def _build_prepared(
    cfg: TrainConfig, dataset_dir: Path, as_of: pd.Timestamp
) -> tuple[PreparedData, pd.DataFrame]:
    timings: dict[str, float] = {}
    sample, frame, feature_columns = _sample_and_features(cfg, dataset_dir, as_of, timings)
    if cfg.features.competitors:
        log.info("per-operator features for: %s", ", ".join(cfg.features.competitors))
    tracking.log_metrics(timings)
    if sample.folds:
        cutoff = pd.to_datetime(frame["cutoff"])
        splits = {
            "train": frame[cutoff.isin(list(sample.refit_cutoffs))].reset_index(drop=True),
            "test": fold_rows(frame, sample.folds[0])[2],
        }
        prepared = PreparedData(
            splits,
            feature_columns,
            _rolling_provenance(sample, cfg),
            frame=frame,
            folds=sample.folds,
            refit_cutoffs=sample.refit_cutoffs,
        )
        return prepared, sample.summary
    splits = {
        name: frame[frame["split"] == name].reset_index(drop=True)
        for name in ("train", "validation", "test")
    }
    prepared = PreparedData(splits, feature_columns, _event_provenance(sample, splits, cfg))
    return prepared, sample.summary


def evaluation_note(folds: tuple[Fold, ...] | list[Fold], requested: int) -> str:
    """What the rolling evaluation could and could not show, in plain words."""
    tests = ", ".join(str(f.test_cutoff.date()) for f in folds)
    lines = [
        f"{len(folds)} out-of-time fold(s), test cutoffs {tests}: each test figure comes from a "
        "model trained without its test cutoff; the registered model is refit on every "
        "labelled cutoff, so its own accuracy is estimated by the folds, not measured."
    ]
    if len(folds) < requested:
        lines.append(
            f"The history allows {len(folds)} of the {requested} folds asked for (sampling.folds)."
        )
    if len(folds) == 1:
        lines.append("With one fold there is no spread: test_roc_auc_std is 0 by construction.")
    if any(f.validation_cutoff is None for f in folds):
        lines.append(
            "Some folds had no out-of-time validation cutoff: their early stopping and "
            "calibration used a hold-out of one training customer in five (same months)."
        )
    if not all(f.embargoed for f in folds):
        lines.append(
            "The history is too short for an embargo: the fold's training labels overlap its "
            "test window. Customers are split in halves so no tested customer was trained on, "
            "but the figure cannot show how the model holds up as behaviour changes over the "
            "coming months; expect the live AUC to be lower. More months of history fix this."
        )
    return " ".join(lines)


def _rolling_provenance(sample: Sample, cfg: TrainConfig) -> dict[str, str]:
    refit = sample.refit_cutoffs
    return {
        "Data window": f"{sample.events_start.date()} to {sample.as_of.date()}",
        "Evaluation": f"rolling origin ({evaluation_note(sample.folds, cfg.sampling.folds)})",
        "Folds": "; ".join(f.describe() for f in sample.folds),
        "Refit training cutoffs": f"{refit[0].date()} to {refit[-1].date()} ({len(refit)}, "
        "test cutoffs included)",
        "Label": f"{cfg.label.kind}, {cfg.label.horizon_days} days after a "
        f"{cfg.label.gap_days}-day gap ({', '.join(cfg.label.reasons)})",
    }


def _truth_auc(dataset_dir: Path, part: pd.DataFrame, cfg: TrainConfig) -> float | None:
    """The AUC of the simulator's true probabilities on these rows (None: not known)."""
    truth = window_probability(dataset_dir, part, cfg.label.horizon_days, cfg.label.gap_days)
    known = truth.notna().to_numpy()
    if known.any() and part["label"][known].nunique() == 2:
        return float(roc_auc_score(part["label"][known], truth[known]))
    return None


def _has_truth(dataset_dir: Path, cfg: TrainConfig) -> bool:
    return truth_path(dataset_dir) is not None and cfg.label.kind == "termination"


def _truth_metrics(
    dataset_dir: Path, splits: dict[str, pd.DataFrame], cfg: TrainConfig
) -> dict[str, float]:
    """On simulated data: the AUC of the true probabilities, the best any model can reach."""
    if not _has_truth(dataset_dir, cfg):
        return {}
    metrics = {}
    for prefix, name in (("val", "validation"), ("test", "test")):
        if name in splits:
            auc = _truth_auc(dataset_dir, splits[name], cfg)
            if auc is not None:
                metrics[f"{prefix}_truth_roc_auc"] = auc
    log.info("simulator truth: %s", metrics)
    return metrics


def _fold_truth(dataset_dir: Path, prepared: PreparedData, cfg: TrainConfig):
    """Per fold test cutoff: the truth AUC on exactly the rows the fold model is tested on."""
    if not _has_truth(dataset_dir, cfg) or prepared.frame is None:
        return {}
    out = {}
    for fold in prepared.folds:
        auc = _truth_auc(dataset_dir, fold_rows(prepared.frame, fold)[2], cfg)
        if auc is not None:
            out[fold.test_cutoff] = auc
    log.info("simulator truth by test cutoff: %s", {str(k.date()): v for k, v in out.items()})
    return out


def _prepare_snapshot(
    cfg: TrainConfig, data: SnapshotData, test_data: SnapshotData | None
) -> PreparedData:
    test_frame = None
    if test_data is not None:
        test_frame = test_data.frame
        missing = set(data.feature_columns) - set(test_frame.columns)
        if missing:
            raise DatasetError(f"the test file lacks columns of the training file: {missing}")
    splits = split_snapshot(data.frame, cfg.data.test_size, cfg.seed, test_frame)
    metrics: dict[str, float] = {}
    model, choice = cfg.model, None
    if model.name == "auto":
        # Chosen on the training rows only: the test split (or file) judges the choice.
        started = time.perf_counter()
        rest = pd.concat([splits["train"], splits["validation"]], ignore_index=True)
        choice = choose_model(rest, data.feature_columns, model, cfg.seed)
        model = choice.model
        table = choice.table.assign(params=choice.table["params"].astype(str))
        tracking.log_frame(table, "model/candidates.csv")
        tracking.log_params({f"model.chosen.{k}": v for k, v in model.params.items()})
        tracking.set_tags({"model_choice": choice.describe()[:5000]})
        metrics["auto_cv_roc_auc"] = float(choice.table["cv_roc_auc"].max())
        metrics["time_model_choice_s"] = round(time.perf_counter() - started, 2)
    if cfg.data.cv_folds > 0:
        started = time.perf_counter()
        folds = cross_validate(data, model, cfg.data.cv_folds, cfg.data.cv_repeats, cfg.seed)
        tracking.log_frame(folds, "evaluation/cv_folds.csv")
        metrics.update(summarize_cv(folds))
        metrics["time_cv_s"] = round(time.perf_counter() - started, 2)
    provenance = {
        "Data": f"snapshot {Path(cfg.data.path).name}, {len(data.frame):,} customers",
        "Split": (
            f"test file {Path(cfg.data.test_path).name}"
            if cfg.data.test_path
            else f"stratified, {cfg.data.test_size:.0%} test"
        ),
        "Label": f"{cfg.data.label_column} = {cfg.data.positive_label}",
    }
    if choice is not None:
        provenance["Model choice"] = choice.describe()
        if cfg.data.cv_folds > 0 and not cfg.data.test_path:
            provenance["Model choice"] += (
                "; the repeated CV figure includes the rows the choice was made on (mildly "
                "optimistic), the test split does not"
            )
    return PreparedData(splits, data.feature_columns, provenance, metrics, model=model)


def _resolve_auto_for_events(cfg: TrainConfig) -> TrainConfig:
    """`model=auto` on event data: the LightGBM defaults (the rolling evaluation would make a
    search fit dozens of models on every cutoff; `churnml tune` searches on purpose)."""
    if cfg.model.name != "auto" or cfg.data.kind != "events":
        return cfg
    log.info("model=auto on event data: LightGBM with the default settings (tune: churnml tune)")
    return replace(cfg, model=replace(cfg.model, name="lightgbm", candidates={}))


def run_training(cfg: TrainConfig) -> TrainResult:
    """Run the whole training job on the configured dataset (raw event tables or a snapshot)."""
    timings: dict[str, float] = {}
    cfg = _resolve_auto_for_events(cfg)
    run_dir = Path(cfg.run_dir)
    started = time.perf_counter()
    validation = snapshot = test_snapshot = None
    if cfg.data.kind == "events" and cfg.features.engine == "spark":
        from churnml.spark.jobs import spark_dataset_facts

        dataset_dir, validation, as_of, fingerprint = spark_dataset_facts(cfg)
    elif cfg.data.kind == "events":
        dataset_dir = require_dataset(cfg.data.path)
        if cfg.validation.enabled:
            validation = _check_events(cfg, dataset_dir, run_dir)
        as_of = dataset_as_of(dataset_dir)
        fingerprint = dataset_fingerprint(dataset_dir)
    elif cfg.data.kind == "snapshot":
        snapshot = read_snapshot(cfg.data.path, cfg.data)
        if cfg.data.test_path:
            test_snapshot = read_snapshot(cfg.data.test_path, cfg.data)
        fingerprint = file_fingerprint(cfg.data.path, cfg.data.test_path)
    else:
        raise DatasetError(f"unknown data.kind {cfg.data.kind!r}: use events or snapshot")
    _timed("validate", timings, started)

    with _job_run(cfg, "train") as run_id:
        tracking.log_params(asdict(cfg))
        tracking.set_tags({"dataset_fingerprint": fingerprint})
        if validation is not None:
            tracking.set_tags({"as_of": as_of.isoformat()})
            tracking.log_text(validation.summary(), "validation/summary.txt")
            if validation.docs_path is not None:
                tracking.log_artifact(validation.docs_path.parent, "validation/data_docs")

        fold_truth = {}
        if snapshot is None:
            prepared = _prepare_events(cfg, dataset_dir, as_of, fingerprint)
            if prepared.folds:
                fold_truth = _fold_truth(dataset_dir, prepared, cfg)
                note = prepared.provenance["Evaluation"]
                tracking.log_text(note, "evaluation/what_it_shows.txt")
                tracking.set_tags({"evaluation": note[:5000]})
                if len(prepared.folds) < cfg.sampling.folds or not prepared.folds[0].embargoed:
                    log.warning("evaluation: %s", note)
                else:
                    log.info("evaluation: %s", note)
            else:
                prepared.metrics.update(_truth_metrics(dataset_dir, prepared.splits, cfg))
        else:
            prepared = _prepare_snapshot(cfg, snapshot, test_snapshot)
        if prepared.model is not None:
            cfg = replace(cfg, model=prepared.model)
        splits = prepared.splits
        tracking.log_text("\n".join(prepared.feature_columns), "features/feature_list.txt")
        for split_name, part in splits.items():
            tracking.log_dataset_input(
                name=cfg.data.name,
                source=str(cfg.data.path),
                digest=fingerprint,
                context=split_name,
                tags=_split_tags(part),
            )

        started = time.perf_counter()
        challenger_score = None
        if prepared.folds:
            rolling = fit_rolling(
                prepared.frame,
                prepared.folds,
                prepared.refit_cutoffs,
                prepared.feature_columns,
                cfg.model,
                cfg.seed,
            )
            model = rolling.model
            label_days = pd.Timedelta(days=cfg.label.gap_days + cfg.label.horizon_days)
            trained_through = max(prepared.refit_cutoffs) + label_days
            newest = fold_rows(prepared.frame, prepared.folds[0])
            recipe_rows = (newest[0], newest[1])
        else:
            model = train_model(
                splits["train"], splits["validation"], prepared.feature_columns, cfg.model, cfg.seed
            )
            trained_through, recipe_rows = None, None
            if "cutoff" in splits["validation"]:
                label_days = pd.Timedelta(days=cfg.label.gap_days + cfg.label.horizon_days)
                trained_through = splits["validation"]["cutoff"].max() + label_days
        _attach_scoring_context(model, splits["test"], cfg, trained_through)
        _timed("train", timings, started)

        started = time.perf_counter()
        if prepared.folds:
            metrics, tables, figures, challenger_score = _evaluate_rolling(rolling, fold_truth, cfg)
            prepared.provenance["Fold test ROC AUC"] = ", ".join(
                f"{row.tested_cutoff} {row.test_roc_auc:.3f}"
                for row in tables["folds"].itertuples()
            )
        else:
            metrics, tables, figures = _evaluate(model, splits, cfg)
        metrics.update(prepared.metrics)
        tracking.log_metrics(metrics)
        for artifact, figure in figures.items():
            tracking.log_figure(figure, artifact)
        for name, table in tables.items():
            tracking.log_frame(table, f"evaluation/{name}.csv")
        _timed("evaluate", timings, started)

        version, decision, champion_run_id = None, Decision(False, "not registered"), None
        if cfg.tracking.register:
            started = time.perf_counter()
            version, decision, champion_run_id = _register(
                model, splits["test"], metrics, prepared, cfg, challenger_score, recipe_rows
            )
            _timed("register", timings, started)

        hazard = None
        if snapshot is None:
            started = time.perf_counter()
            hazard = hazard_job.train_hazard(
                cfg, dataset_dir, _hazard_frame(prepared), prepared.feature_columns, as_of
            )
            _timed("hazard", timings, started)

        report_path = None
        if cfg.explain.enabled:
            report_path = Path(cfg.paths.reports_dir) / "loss_drivers.html"
            started = time.perf_counter()
            card = _model_card(prepared, metrics, version or "unregistered", cfg)
            page, driver_tables = _explain_and_report(
                model, splits["test"], metrics, card, cfg, champion_run_id, hazard
            )
            for name, table in driver_tables.items():
                tracking.log_frame(table, f"drivers/{name}.parquet")
                tracking.log_frame(table, f"drivers/{name}.csv")
            tracking.log_text(page, "report/loss_drivers.html")
            write_atomic(report_path, lambda tmp: tmp.write_text(page, encoding="utf-8"))
            run_copy = report_path.with_name(f"loss_drivers_{run_id}.html")
            write_atomic(run_copy, lambda tmp: tmp.write_text(page, encoding="utf-8"))
            _timed("explain", timings, started)
        tracking.log_metrics(timings)
        tracking.describe_run(_run_description(cfg, metrics, version, decision))
        if version is not None:
            _finish_promotion(cfg, version, decision)
        hazard_job.finish_promotion(hazard)
    return TrainResult(
        run_id=run_id,
        dataset_name=cfg.data.name,
        model_name=cfg.tracking.registered_model_name,
        model_version=version,
        promoted=decision.promote,
        decision=decision.reason,
        metrics={**metrics, **(hazard.metrics if hazard else {})},
        report_path=report_path,
        hazard_model_version=hazard.version if hazard else None,
        hazard_decision=hazard.decision.reason if hazard and hazard.version else None,
    )


def _hazard_frame(prepared: PreparedData) -> pd.DataFrame | None:
    """Every labelled (customer, cutoff) row with its features, for the time-to-churn model."""
    if prepared.frame is not None:
        return prepared.frame
    parts = [p for p in prepared.splits.values() if "cutoff" in p]
    return pd.concat(parts, ignore_index=True) if parts else None


def run_simulation(cfg: DictConfig) -> Path:
    """`churnml simulate`: typed simulation params from `cfg.simulate`, written under raw_dir."""
    # Merging onto the dataclass schema rejects unknown keys and wrongly typed values.
    schema = OmegaConf.structured(SimulationParams)
    params: SimulationParams = OmegaConf.to_object(OmegaConf.merge(schema, cfg.simulate))
    out_dir = Path(cfg.paths.raw_dir) / params.name
    log.info(
        "simulating %d customers over %d months into %s",
        params.n_customers,
        params.n_months,
        out_dir,
    )
    return simulate_dataset(params, out_dir)


def _check_events(cfg, dataset_dir: Path, run_dir: Path, *, docs: bool = True) -> ValidationReport:
    """Check an event dataset against the contract (ContractViolation when it breaks a rule).

    With `validation.cache`, a table file that passed under the same rules is not scanned
    again: scoring right after training on the same extract validates nothing twice. `docs`
    writes the validation pages (training and `churnml validate`; the nightly scoring run
    needs only the verdict, whose error names every broken rule).
    """
    return check_dataset(
        dataset_dir,
        docs_dir=run_dir / "validation" if docs else None,
        limits=validation_limits(cfg.validation),
        cache_dir=Path(cfg.validation.cache_dir) if cfg.validation.cache else None,
    )


def run_validation(cfg: ValidateConfig) -> str:
    """`churnml validate`: check a dataset against the contract; the summary, or exit 2."""
    if cfg.data.kind == "snapshot":
        frame = read_snapshot(cfg.data.path, cfg.data)
        return f"snapshot {cfg.data.path}: {len(frame.frame):,} customers meet the contract"
    dataset_dir = require_dataset(cfg.data.path)
    report = _check_events(cfg, dataset_dir, Path(cfg.run_dir))
    lines = [f"{cfg.data.name} ({dataset_dir}): {report.summary()}"]
    if report.docs_path is not None:
        lines.append(f"Validation pages: {report.docs_path.parent}")
    return "\n".join(lines)


@dataclass(frozen=True)
class ScoreResult:
    scores_path: Path
    contact_list_path: Path
    monitoring_path: Path
    rows: int
    model_name: str
    model_version: str
    run_id: str
    warnings: list[str]


def scoring_folder(cfg: ScoreConfig, scoring_date: pd.Timestamp) -> Path:
    """Where a date's scores go: keyed by dataset, so a test extract never overwrites
    production (`scoring.production_dataset` keeps `<output_dir>/scoring_date=<date>`)."""
    return output_folder(
        cfg.scoring.output_dir,
        cfg.data.name,
        cfg.scoring.production_dataset,
        f"scoring_date={scoring_date.date().isoformat()}",
    )


def longest_window_days(params: FeatureParams) -> int:
    """How many days of history before a cutoff the model's features read.

    The trend features compare the last 30 days with the 60 before them: 90 days at least.
    """
    return max([*params.windows, *params.complaint_category_windows, 90])


def _check_history(
    dataset_dir: Path | dict[str, pd.Timestamp],
    scoring_date: pd.Timestamp,
    params: FeatureParams,
    allow_short: bool,
) -> str | None:
    """Refuse (or, when allowed, warn about) a date the features cannot see enough before.

    The history is that of the event table that starts last: bills may go back further than
    the call records, but the call features are only as good as the calls kept. `dataset_dir`
    is the dataset, or its tables' first event times (the Spark engine computes them).
    """
    needed = longest_window_days(params)
    starts = dataset_dir if isinstance(dataset_dir, dict) else event_table_starts(dataset_dir)
    if not starts:
        return None
    table, start = max(starts.items(), key=lambda item: item[1])
    have = (scoring_date - start).days
    if have >= needed:
        return None
    message = (
        f"scoring at {scoring_date.date()} leaves {max(have, 0)} days of event history in "
        f"{table} (from {start.date()}), but the model's features read {needed} days back: "
        f"its 30- and 90-day figures would be built from {max(have, 0)} days"
    )
    if not allow_short:
        raise DatasetError(
            f"{message}. Choose a later scoring.date, or set scoring.allow_short_history=true "
            "to score anyway (with a warning in monitoring.json)"
        )
    log.warning("%s (scoring.allow_short_history=true)", message)
    return message


def run_scoring(cfg: ScoreConfig) -> ScoreResult:
    """Score every eligible customer at the scoring date with the champion (or chosen) model.

    Everything is computed and checked before the first byte is published; each file is
    written to a temporary name and renamed, so a crash leaves the previous files intact.
    The MLflow run covers the whole job: a failed run is recorded as FAILED with its exit code.
    """
    with _job_run(cfg, "score") as run_id:
        return _score(cfg, run_id)


@contextmanager
def _job_run(cfg: TrainConfig | ScoreConfig, job: str) -> Iterator[str]:
    """The job's MLflow run; a failure leaves it FAILED, tagged with its exit code and error
    (MLflow marks the status as the exception leaves the run)."""
    with tracking.mlflow_run(
        cfg.tracking,
        run_name=f"{job}-{cfg.data.name}",
        tags={"job": job, "dataset": cfg.data.name},
    ) as run_id:
        try:
            yield run_id
        except BaseException as error:
            code = exit_code_for(error)
            tracking.set_tags({"exit_code": int(code), "error": f"{type(error).__name__}: {error}"})
            log.error("%s failed (exit %d): %s", job, int(code), error)
            raise


def _score(cfg: ScoreConfig, run_id: str) -> ScoreResult:
    if cfg.scoring.engine == "spark":
        from churnml.spark.jobs import score_on_spark

        return score_on_spark(cfg, run_id)
    timings: dict[str, float] = {}
    run_dir = Path(cfg.run_dir)
    dataset_dir = require_dataset(cfg.data.path)
    started = time.perf_counter()
    if cfg.validation.enabled:
        _check_events(cfg, dataset_dir, run_dir, docs=False)
    as_of = dataset_as_of(dataset_dir)
    scoring_date = parse_timestamp(cfg.scoring.date, "scoring.date") if cfg.scoring.date else as_of
    tracking.set_tags({"mlflow.runName": f"score-{cfg.data.name}-{scoring_date.date()}"})
    if scoring_date > as_of:
        raise DatasetError(
            f"scoring.date {scoring_date} is after the data's as_of {as_of}: the features "
            "would miss the days in between"
        )
    _timed("validate", timings, started)

    model, version, model_run_id = tracking.load_registered_model(
        cfg.tracking, alias=cfg.scoring.model_alias, version=cfg.scoring.model_version
    )
    if model.settings.get("data_kind", "events") != "events":
        raise DatasetError(
            "the chosen model was trained on a snapshot dataset: score it "
            "with a snapshot file, not raw event tables"
        )
    feature_params = FeatureParams(**model.settings["features"])
    folder = scoring_folder(cfg, scoring_date)
    with output_lock(folder):
        started = time.perf_counter()
        customers = read_table(
            dataset_dir, "customers", ["customer_id", "activated_at", "terminated_at"]
        )
        eligible = eligible_customers(
            customers, scoring_date, model.settings.get("min_tenure_days", 30)
        )
        if not eligible.any():
            raise NoEligibleCustomersError(
                f"no customer of {dataset_dir} is eligible at {scoring_date} (active, with "
                f"{model.settings.get('min_tenure_days', 30)} days of tenure)"
            )
        history_warning = _check_history(
            dataset_dir, scoring_date, feature_params, cfg.scoring.allow_short_history
        )
        spine = pd.DataFrame(
            {
                "customer_id": customers.loc[eligible, "customer_id"].astype(str).to_numpy(),
                "cutoff": scoring_date,
            }
        )
        spine["cutoff"] = spine["cutoff"].astype("datetime64[us]")
        features = build_features(dataset_dir, spine, feature_params)
        _timed("features", timings, started)

        started = time.perf_counter()
        hazard = hazard_job.load_for_scoring(cfg)  # None: no time-to-churn columns
        time_to_churn, hazard_features = None, None
        if hazard is not None:
            hazard_features = features
            if not set(hazard.model.feature_names) <= set(features.columns):
                hazard_params = FeatureParams(**hazard.model.settings["features"])
                hazard_features = build_features(dataset_dir, spine, hazard_params)
            time_to_churn = hazard_job.score_columns(
                hazard, hazard_features, cfg, feature_params.value_tier_cuts
            )
            # The playbook's `when` conditions can test the value segment.
            segment = time_to_churn.set_index("customer_id")["value_segment"]
            features = features.assign(
                value_segment=features["customer_id"].astype(str).map(segment).to_numpy()
            )
        _timed("time_to_churn", timings, started)

        started = time.perf_counter()
        scores = scoring.score_frame(
            model,
            features,
            scoring_date,
            cfg.tracking.registered_model_name,
            version,
            model_run_id,
            cfg.scoring,
            cfg.evaluation,
        )
        if time_to_churn is not None:
            scores = hazard_job.attach_scores(scores, time_to_churn, cfg.hazard)
        # As is without an uplift model.
        scores = score_uplift(cfg, dataset_dir, scores, features, hazard, hazard_features)
        check_scores(scores, expected_ids=spine["customer_id"])
        contacts = scoring.contact_list(
            scores, cfg.scoring.contact_list_size, currency=cfg.scoring.currency
        )
        monitoring = scoring.monitor_population(
            model, features, scores["churn_probability"].to_numpy(), cfg.scoring
        )
        if history_warning:
            monitoring["warnings"].append(history_warning)
        if short := scoring.short_contact_list_warning(
            len(contacts), len(scores), cfg.scoring, scores.get("uplift")
        ):
            log.warning("scoring: %s", short)
            monitoring["warnings"].append(short)
        monitoring.update(
            {
                "scoring_date": scoring_date.isoformat(),
                "rows": len(scores),
                "model_name": cfg.tracking.registered_model_name,
                "model_version": version,
                "model_run_id": model_run_id,
                "reason_attribution": cfg.scoring.attribution.value,
                "hazard_model": f"{hazard.name} v{hazard.version}" if hazard else None,
            }
        )
        _timed("score", timings, started)

        started = time.perf_counter()
        files = {
            "scores.parquet": lambda tmp: scores.to_parquet(tmp, index=False),
            "contact_list.csv": lambda tmp: contacts.to_csv(tmp, index=False),
            "monitoring.json": lambda tmp: tmp.write_text(scoring.monitoring_json(monitoring)),
        }
        if cfg.scoring.write_csv:
            files["scores.csv"] = lambda tmp: scores.to_csv(tmp, index=False)
        publish_folder(folder, files)  # all of the date's files appear together, or none
        scores_path = folder / "scores.parquet"
        contact_path = folder / "contact_list.csv"
        monitoring_path = folder / "monitoring.json"
        _timed("write", timings, started)

    tracking.log_params(
        {
            "scoring_date": scoring_date.isoformat(),
            "model_name": cfg.tracking.registered_model_name,
            "model_version": version,
            "model_run_id": model_run_id,
            "reason_attribution": cfg.scoring.attribution.value,
            "output": str(scores_path),
        }
    )
    tracking.log_dataset_input(
        name=cfg.data.name,
        source=str(dataset_dir),
        digest=dataset_fingerprint(dataset_dir),
        context="scoring",
        tags={"scoring_date": str(scoring_date.date()), "rows": str(len(scores))},
    )
    quantiles = scores["churn_probability"].quantile([0.1, 0.5, 0.9, 0.99])
    tracking.log_metrics(
        {
            "rows": len(scores),
            "contacts": len(contacts),
            "mean_probability": scores["churn_probability"].mean(),
            **{f"probability_p{int(q * 100)}": v for q, v in quantiles.items()},
            "revenue_at_risk": scores["revenue_at_risk"].sum(),
            **{f"psi_{k}": v for k, v in monitoring["psi"].items()},
            **timings,
        }
    )
    tracking.log_dict(monitoring, "monitoring.json")
    tracking.set_tags({"exit_code": 0})
    if monitoring["warnings"]:
        tracking.set_tags({"monitoring_warning": "; ".join(monitoring["warnings"])[:5000]})
    return ScoreResult(
        scores_path,
        contact_path,
        monitoring_path,
        len(scores),
        cfg.tracking.registered_model_name,
        version,
        run_id,
        monitoring["warnings"],
    )
