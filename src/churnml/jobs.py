"""The jobs the pipelines run, as plain functions of a typed config (tests call them directly).

`run_training`: validate -> sample -> build features -> train -> evaluate -> explain -> log,
register and promote. Validation runs before anything is written: a broken contract rule stops
the job with no MLflow run, no model version and no report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from sklearn.metrics import roc_auc_score

from churnml import evaluation, explain, report, scoring, tracking
from churnml.config import ScoreConfig, TrainConfig, ValidateConfig
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
from churnml.sampling import Sample, eligible_customers, event_table_starts, sample_customers
from churnml.simulate import SimulationParams, simulate_dataset
from churnml.simulate.truth import truth_path, window_probability
from churnml.snapshot import (
    SnapshotData,
    cross_validate,
    guess_column_causes,
    read_snapshot,
    split_snapshot,
    summarize_cv,
)
from churnml.tracking import NoChampionError
from churnml.training import train_model
from churnml.validation import check_dataset, check_scores, validation_limits

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


def _attach_scoring_context(model: ChurnModel, test: pd.DataFrame, cfg: TrainConfig) -> None:
    """Record what scoring must repeat, and a reference sample for population stability."""
    model.settings = {
        "features": asdict(cfg.features),
        "label": asdict(cfg.label),
        "min_tenure_days": cfg.sampling.min_tenure_days,
        "data_kind": cfg.data.kind,
        "currency": cfg.data.currency,  # the served model's reasons name it
    }
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
            scored = part.assign(probability=p)
            tables["auc_by_segment"] = evaluation.auc_by_segment(
                scored, cfg.evaluation.segment_columns
            )
            curve = evaluation.profit_curve(y, p, _monthly_revenue(part), cfg.evaluation)
            metrics["test_best_profit"] = curve.best_profit
            metrics["test_best_contact_fraction"] = curve.best_fraction
            title = (
                f"Test cutoff {part['cutoff'].iloc[0].date()}" if "cutoff" in part else "Test split"
            )
            figures = {
                "plots/roc.png": evaluation.plot_roc(y, p, title),
                "plots/gain_lift.png": evaluation.plot_gain_lift(y, p, title),
                "plots/reliability.png": evaluation.plot_reliability(y, p, title),
                "plots/score_distribution.png": evaluation.plot_score_distribution(y, p, title),
                "plots/profit_curve.png": evaluation.plot_profit_curve(curve, title),
            }
    return metrics, tables, figures


def _champion_decision(
    cfg: TrainConfig, model: ChurnModel, test: pd.DataFrame, challenger_score: float
) -> tuple[Decision, str | None]:
    """Score the current champion on the challenger's test rows; decide (`churnml.promotion`).

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
    champion_score, champion_error = None, None
    if champion == challenger:
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
    return decision, champion_version


@dataclass
class PreparedData:
    """The labelled splits a model is trained and judged on, and how they were made."""

    splits: dict[str, pd.DataFrame]
    feature_columns: list[str]
    provenance: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)  # cross-validation, simulator truth


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
        "Rows (train / val / test)": " / ".join(f"{len(splits[s]):,}" for s in splits),
        "Test ROC AUC": f"{metrics['test_roc_auc']:.3f}",
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
        )
    )
    tables = {
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
) -> tuple[str, Decision, str | None]:
    """Register the model as challenger and decide whether it may become champion.

    The champion alias itself moves only at the very end of a run whose every stage succeeded
    (`_finish_promotion`): a run that fails or is killed later never leaves a new champion.
    """
    decision, champion_version = _champion_decision(
        cfg, model, test, metrics[cfg.tracking.promotion_metric]
    )
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


def _prepare_events(cfg: TrainConfig, dataset_dir: Path, as_of: pd.Timestamp) -> PreparedData:
    timings: dict[str, float] = {}
    started = time.perf_counter()
    sample = sample_customers(dataset_dir, cfg.label, cfg.sampling, cfg.seed, as_of=as_of)
    tracking.log_frame(sample.summary, "sample/summary.csv")
    _timed("sample", timings, started)

    started = time.perf_counter()
    # Which competitors get their own columns is decided before the latest training cutoff and
    # recorded with the model (`_attach_scoring_context`), so scoring builds the same columns.
    latest_train_cutoff = sample.rows.loc[sample.rows["split"] == "train", "cutoff"].max()
    cfg.features = resolve_feature_params(dataset_dir, cfg.features, latest_train_cutoff)
    if cfg.features.competitors:
        log.info("per-operator features for: %s", ", ".join(cfg.features.competitors))
    frame, feature_columns = build_training_frame(dataset_dir, sample, cfg)
    _timed("features", timings, started)
    tracking.log_metrics(timings)
    splits = {
        name: frame[frame["split"] == name].reset_index(drop=True)
        for name in ("train", "validation", "test")
    }
    return PreparedData(splits, feature_columns, _event_provenance(sample, splits, cfg))


def _truth_metrics(
    dataset_dir: Path, splits: dict[str, pd.DataFrame], cfg: TrainConfig
) -> dict[str, float]:
    """On simulated data: the AUC of the true probabilities, the best any model can reach."""
    if truth_path(dataset_dir) is None or cfg.label.kind != "termination":
        return {}
    metrics = {}
    for prefix, name in (("val", "validation"), ("test", "test")):
        part = splits[name]
        truth = window_probability(dataset_dir, part, cfg.label.horizon_days, cfg.label.gap_days)
        known = truth.notna().to_numpy()
        if known.any() and part["label"][known].nunique() == 2:
            metrics[f"{prefix}_truth_roc_auc"] = float(
                roc_auc_score(part["label"][known], truth[known])
            )
    log.info("simulator truth: %s", metrics)
    return metrics


def _prepare_snapshot(
    cfg: TrainConfig, data: SnapshotData, test_data: SnapshotData | None
) -> PreparedData:
    cv_metrics = {}
    if cfg.data.cv_folds > 0:
        started = time.perf_counter()
        folds = cross_validate(data, cfg.model, cfg.data.cv_folds, cfg.data.cv_repeats, cfg.seed)
        tracking.log_frame(folds, "evaluation/cv_folds.csv")
        cv_metrics = {**summarize_cv(folds), "time_cv_s": round(time.perf_counter() - started, 2)}
    test_frame = None
    if test_data is not None:
        test_frame = test_data.frame
        missing = set(data.feature_columns) - set(test_frame.columns)
        if missing:
            raise DatasetError(f"the test file lacks columns of the training file: {missing}")
    splits = split_snapshot(data.frame, cfg.data.test_size, cfg.seed, test_frame)
    provenance = {
        "Data": f"snapshot {Path(cfg.data.path).name}, {len(data.frame):,} customers",
        "Split": (
            f"test file {Path(cfg.data.test_path).name}"
            if cfg.data.test_path
            else f"stratified, {cfg.data.test_size:.0%} test"
        ),
        "Label": f"{cfg.data.label_column} = {cfg.data.positive_label}",
    }
    return PreparedData(splits, data.feature_columns, provenance, cv_metrics)


def run_training(cfg: TrainConfig) -> TrainResult:
    """Run the whole training job on the configured dataset (raw event tables or a snapshot)."""
    timings: dict[str, float] = {}
    run_dir = Path(cfg.run_dir)
    started = time.perf_counter()
    validation = snapshot = test_snapshot = None
    if cfg.data.kind == "events":
        dataset_dir = require_dataset(cfg.data.path)
        if cfg.validation.enabled:
            validation = check_dataset(
                dataset_dir,
                docs_dir=run_dir / "validation",
                chunk_rows=cfg.validation.chunk_rows,
                limits=validation_limits(cfg.validation),
            )
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

    with (
        tracking.mlflow_run(
            cfg.tracking,
            run_name=f"train-{cfg.data.name}",
            tags={"job": "train", "dataset": cfg.data.name},
        ) as run_id,
        _failure_recorded("training"),
    ):
        tracking.log_params(asdict(cfg))
        tracking.set_tags({"dataset_fingerprint": fingerprint})
        if validation is not None:
            tracking.set_tags({"as_of": as_of.isoformat()})
            tracking.log_text(validation.summary(), "validation/summary.txt")
            if validation.docs_path is not None:
                tracking.log_artifact(validation.docs_path.parent, "validation/data_docs")

        if snapshot is None:
            prepared = _prepare_events(cfg, dataset_dir, as_of)
            prepared.metrics.update(_truth_metrics(dataset_dir, prepared.splits, cfg))
        else:
            prepared = _prepare_snapshot(cfg, snapshot, test_snapshot)
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
        model = train_model(
            splits["train"], splits["validation"], prepared.feature_columns, cfg.model, cfg.seed
        )
        _attach_scoring_context(model, splits["test"], cfg)
        _timed("train", timings, started)

        started = time.perf_counter()
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
                model, splits["test"], metrics, prepared, cfg
            )
            _timed("register", timings, started)

        report_path = None
        if cfg.explain.enabled:
            report_path = Path(cfg.paths.reports_dir) / "loss_drivers.html"
            started = time.perf_counter()
            card = _model_card(prepared, metrics, version or "unregistered", cfg)
            page, driver_tables = _explain_and_report(
                model, splits["test"], metrics, card, cfg, champion_run_id
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
    return TrainResult(
        run_id=run_id,
        dataset_name=cfg.data.name,
        model_name=cfg.tracking.registered_model_name,
        model_version=version,
        promoted=decision.promote,
        decision=decision.reason,
        metrics=metrics,
        report_path=report_path,
    )


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


def run_validation(cfg: ValidateConfig) -> str:
    """`churnml validate`: check a dataset against the contract; the summary, or exit 2."""
    if cfg.data.kind == "snapshot":
        frame = read_snapshot(cfg.data.path, cfg.data)
        return f"snapshot {cfg.data.path}: {len(frame.frame):,} customers meet the contract"
    dataset_dir = require_dataset(cfg.data.path)
    report = check_dataset(
        dataset_dir,
        docs_dir=Path(cfg.run_dir) / "validation",
        chunk_rows=cfg.validation.chunk_rows,
        limits=validation_limits(cfg.validation),
    )
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
    dataset_dir: Path, scoring_date: pd.Timestamp, params: FeatureParams, allow_short: bool
) -> str | None:
    """Refuse (or, when allowed, warn about) a date the features cannot see enough before.

    The history is that of the event table that starts last: bills may go back further than
    the call records, but the call features are only as good as the calls kept.
    """
    needed = longest_window_days(params)
    starts = event_table_starts(dataset_dir)
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
    with (
        tracking.mlflow_run(
            cfg.tracking,
            run_name=f"score-{cfg.data.name}",
            tags={"job": "score", "dataset": cfg.data.name},
        ) as run_id,
        _failure_recorded("scoring"),
    ):
        return _score(cfg, run_id)


@contextmanager
def _failure_recorded(job: str) -> Iterator[None]:
    """Tag the active MLflow run with the exit code and error of a failing job (MLflow itself
    marks the run FAILED as the exception leaves it)."""
    try:
        yield
    except BaseException as error:
        code = exit_code_for(error)
        tracking.set_tags({"exit_code": int(code), "error": f"{type(error).__name__}: {error}"})
        log.error("%s failed (exit %d): %s", job, int(code), error)
        raise


def _score(cfg: ScoreConfig, run_id: str) -> ScoreResult:
    timings: dict[str, float] = {}
    run_dir = Path(cfg.run_dir)
    dataset_dir = require_dataset(cfg.data.path)
    started = time.perf_counter()
    if cfg.validation.enabled:
        check_dataset(
            dataset_dir,
            docs_dir=run_dir / "validation",
            chunk_rows=cfg.validation.chunk_rows,
            limits=validation_limits(cfg.validation),
        )
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
        check_scores(scores, expected_ids=spine["customer_id"])
        contacts = scoring.contact_list(
            scores, cfg.scoring.contact_list_size, currency=cfg.scoring.currency
        )
        monitoring = scoring.monitor_population(
            model, features, scores["churn_probability"].to_numpy(), cfg.scoring
        )
        if history_warning:
            monitoring["warnings"].append(history_warning)
        monitoring.update(
            {
                "scoring_date": scoring_date.isoformat(),
                "rows": len(scores),
                "model_name": cfg.tracking.registered_model_name,
                "model_version": version,
                "model_run_id": model_run_id,
                "reason_attribution": cfg.scoring.attribution.value,
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
