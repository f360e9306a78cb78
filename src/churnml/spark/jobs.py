"""`churnml score scoring.engine=spark`: the scoring job of `churnml.jobs` on a Spark session.

The same steps and guarantees as the DuckDB job: validation before anything is written, the
scoring date checked against the data, the champion loaded from the registry, one lock per
date's folder on local disk, the scores checked before they are published, and the folder
moved into place whole. docs/spark.md says what runs where.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path

import pandas as pd

from churnml import scoring, tracking
from churnml.config import ScoreConfig
from churnml.errors import NoEligibleCustomersError
from churnml.features import FeatureParams
from churnml.io import (
    EVENT_TIME_COLUMNS,
    DatasetError,
    output_folder,
    output_lock,
    parse_timestamp,
)

log = logging.getLogger(__name__)


def local_folder(path: str) -> Path | None:
    """`path` as a local folder when it is one (no scheme, or file:), else None."""
    text = str(path)
    if text.startswith("file:"):
        text = text.removeprefix("file:").removeprefix("//")
    elif "://" in text:
        return None
    return Path(text)


def spark_folder(cfg: ScoreConfig, scoring_date: pd.Timestamp) -> str:
    """`jobs.scoring_folder` for any Spark path (a URI keeps its scheme)."""
    base = str(cfg.scoring.output_dir).rstrip("/")
    leaf = f"scoring_date={scoring_date.date().isoformat()}"
    relative = output_folder("x", cfg.data.name, cfg.scoring.production_dataset, leaf)
    return f"{base}/{relative.relative_to('x').as_posix()}"


def _first_and_last_events(tables: dict) -> tuple[dict[str, pd.Timestamp], pd.Timestamp | None]:
    """Each event table's first event time and the latest event time of all (one aggregate
    per table, one row each to the driver)."""
    starts, latest = {}, []
    for table, columns in EVENT_TIME_COLUMNS.items():
        if table not in tables:
            continue
        present = [c for c in columns if c in tables[table].columns]
        if not present:
            continue
        exprs = [f"min(`{present[0]}`)"] + [f"max(`{c}`)" for c in present]
        row = tables[table].selectExpr(*exprs).first()
        if table != "customers" and row[0] is not None:
            starts[table] = pd.Timestamp(row[0])
        latest += [pd.Timestamp(v) for v in row[1:] if v is not None]
    return starts, (max(latest) if latest else None)


def _validate_on_spark(cfg, spark):
    """The data contract checked on Spark before anything is written (`validation.enabled`):
    ContractViolation, naming table, column, rule and example ids, when the data break it."""
    from churnml.spark.validation import check_dataset_spark
    from churnml.validation import validation_limits

    if not cfg.validation.enabled:
        return None
    return check_dataset_spark(
        spark,
        str(cfg.data.path),
        tables=cfg.spark.tables,
        as_of=manifest_as_of_spark(spark, str(cfg.data.path)),
        limits=validation_limits(cfg.validation),
    )


def manifest_as_of_spark(spark, data_path: str) -> pd.Timestamp | None:
    """The as_of of manifest.json beside the tables (any file system), or None."""
    from churnml.spark.session import path_exists, read_text

    manifest = f"{str(data_path).rstrip('/')}/manifest.json"
    if not path_exists(spark, manifest):
        return None
    try:
        value = json.loads(read_text(spark, manifest)).get("as_of")
    except (ValueError, AttributeError) as error:
        raise DatasetError(f"{manifest}: not a JSON object with as_of ({error})") from error
    return parse_timestamp(value, f"{manifest}: as_of") if value is not None else None


def spark_as_of(spark, cfg, latest: pd.Timestamp | None) -> pd.Timestamp:
    """The data's as_of: manifest.json beside the tables, else the latest event time."""
    as_of = manifest_as_of_spark(spark, str(cfg.data.path)) or latest
    if as_of is None:
        raise DatasetError(f"cannot tell the as_of date of {cfg.data.path}: no event times found")
    return as_of


def spark_dataset_facts(cfg) -> tuple[Path, object, pd.Timestamp, str]:
    """What the training job needs before sampling, for data read by Spark: the dataset
    folder (for the simulator's truth, local data only), the validation report, as_of and a
    fingerprint of the sources (paths and as_of: reading every file would cost a job)."""
    import hashlib

    from churnml.spark.session import spark_session
    from churnml.spark.tables import read_dataset, table_sources

    spark = spark_session(cfg.spark)
    local = local_folder(cfg.data.path)
    validation = _validate_on_spark(cfg, spark)
    tables = read_dataset(spark, cfg.data.path, cfg.spark.tables)
    _, latest = _first_and_last_events(tables)
    as_of = spark_as_of(spark, cfg, latest)
    sources = table_sources(spark, cfg.data.path, cfg.spark.tables)
    digest = hashlib.sha256(json.dumps([sorted(sources.items()), str(as_of)]).encode())
    return Path(local or str(cfg.data.path)), validation, as_of, digest.hexdigest()[:16]


def score_on_spark(cfg: ScoreConfig, run_id: str) -> object:
    """Score every eligible customer at the scoring date on Spark (see the module doc)."""
    from churnml.jobs import ScoreResult, _check_history, _timed
    from churnml.spark.features import build_features_spark
    from churnml.spark.scoring import (
        SCORES_FILE,
        monitor_population_spark,
        monitoring_text,
        publish_scores_spark,
        score_features,
    )
    from churnml.spark.session import spark_session
    from churnml.spark.tables import read_dataset

    timings: dict[str, float] = {}
    started = time.perf_counter()
    spark = spark_session(cfg.spark)
    _validate_on_spark(cfg, spark)
    tables = read_dataset(spark, cfg.data.path, cfg.spark.tables)
    starts, latest = _first_and_last_events(tables)
    as_of = spark_as_of(spark, cfg, latest)
    scoring_date = parse_timestamp(cfg.scoring.date, "scoring.date") if cfg.scoring.date else as_of
    tracking.set_tags(
        {"mlflow.runName": f"score-{cfg.data.name}-{scoring_date.date()}", "engine": "spark"}
    )
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
    feature_params = FeatureParams(**{**model.settings["features"], "engine": "spark"})
    not_applied = models_not_applied(cfg)
    for warning in not_applied:
        log.warning("scoring on Spark: %s", warning)
    folder = spark_folder(cfg, scoring_date)
    local_out = local_folder(folder)
    lock = output_lock(local_out) if local_out is not None else contextlib.nullcontext()
    if local_out is None:
        log.info("scores go to %s: no lock on a remote store, the scheduler runs one job", folder)
    with lock:
        started = time.perf_counter()
        tenure = int(model.settings.get("min_tenure_days", 30))
        date = scoring_date.isoformat(sep=" ")
        spine = (
            tables["customers"]
            .selectExpr(
                "customer_id", f"TIMESTAMP '{date}' AS cutoff", "activated_at", "terminated_at"
            )
            .where(
                f"activated_at <= TIMESTAMP '{date}' - INTERVAL '{tenure}' DAY"
                " AND (terminated_at IS NULL OR terminated_at > cutoff)"
            )
            .select("customer_id", "cutoff")
        )
        if not spine.take(1):
            raise NoEligibleCustomersError(
                f"no customer of {cfg.data.path} is eligible at {scoring_date} (active, with "
                f"{tenure} days of tenure)"
            )
        history_warning = _check_history(
            starts, scoring_date, feature_params, cfg.scoring.allow_short_history
        )
        features = build_features_spark(spark, tables, spine, feature_params).persist()
        cached = [features]
        scores = score_features(
            spark,
            features,
            model,
            scoring_date,
            cfg.tracking.registered_model_name,
            version,
            model_run_id,
            cfg.scoring,
            cfg.evaluation,
            cached,
        )
        summary: dict = {}

        def outputs(written) -> dict[str, str]:
            """Contact list and monitoring from the written scores (read back, not rerun)."""
            size = cfg.scoring.contact_list_size
            top = (
                written.where(f"action != '{scoring.NO_ACTION}' AND expected_profit > 0")
                .orderBy("priority_rank")
                .limit(size)
                .toPandas()
            )
            contacts = scoring.contact_list(top, size, currency=cfg.scoring.currency)
            monitoring = monitor_population_spark(model, features, written, cfg.scoring)
            if history_warning:
                monitoring["warnings"].append(history_warning)
            monitoring["warnings"].extend(not_applied)
            stats = written.selectExpr(
                "count(*)",
                "avg(churn_probability)",
                "sum(revenue_at_risk)",
                "percentile(churn_probability, array(0.1D, 0.5D, 0.9D, 0.99D))",
            ).first()
            if short := scoring.short_contact_list_warning(
                len(contacts), int(stats[0]), cfg.scoring
            ):
                monitoring["warnings"].append(short)
            summary.update(
                rows=int(stats[0]),
                mean=float(stats[1]),
                risk=float(stats[2]),
                quantiles=list(stats[3]),
                contacts=len(contacts),
                monitoring=monitoring,
            )
            monitoring.update(
                {
                    "scoring_date": scoring_date.isoformat(),
                    "rows": int(stats[0]),
                    "model_name": cfg.tracking.registered_model_name,
                    "model_version": version,
                    "model_run_id": model_run_id,
                    "reason_attribution": cfg.scoring.attribution.value,
                    "engine": "spark",
                }
            )
            files = {
                "contact_list.csv": contacts.to_csv(index=False),
                "monitoring.json": monitoring_text(monitoring),
            }
            return files

        try:
            publish_scores_spark(spark, folder, scores, spine, outputs)
        finally:
            for frame in cached:  # the session may score again (a re-run, a notebook)
                frame.unpersist()
        _timed("score", timings, started)

    monitoring = summary["monitoring"]
    tracking.log_params(
        {
            "scoring_date": scoring_date.isoformat(),
            "model_name": cfg.tracking.registered_model_name,
            "model_version": version,
            "model_run_id": model_run_id,
            "reason_attribution": cfg.scoring.attribution.value,
            "output": f"{folder}/{SCORES_FILE}",
            "engine": "spark",
        }
    )
    quantiles = dict(zip((10, 50, 90, 99), summary["quantiles"], strict=True))
    tracking.log_metrics(
        {
            "rows": summary["rows"],
            "contacts": summary["contacts"],
            "mean_probability": summary["mean"],
            **{f"probability_p{q}": v for q, v in quantiles.items()},
            "revenue_at_risk": summary["risk"],
            **{f"psi_{k}": v for k, v in monitoring["psi"].items()},
            **timings,
        }
    )
    tracking.log_dict(monitoring, "monitoring.json")
    tracking.set_tags({"exit_code": 0})
    if monitoring["warnings"]:
        tracking.set_tags({"monitoring_warning": "; ".join(monitoring["warnings"])[:5000]})
    out = Path(local_out) if local_out is not None else Path(folder)
    return ScoreResult(
        out / SCORES_FILE,
        out / "contact_list.csv",
        out / "monitoring.json",
        summary["rows"],
        cfg.tracking.registered_model_name,
        version,
        run_id,
        monitoring["warnings"],
    )


def models_not_applied(cfg: ScoreConfig) -> list[str]:
    """Registered models the DuckDB path applies and Spark scoring does not (docs/spark.md),
    each as a warning for the log and monitoring, so nobody reads their absence as a pass."""
    from churnml.hazard_job import hazard_tracking
    from churnml.uplift import uplift_tracking

    out = []
    hazard = hazard_tracking(cfg.tracking)
    alias = cfg.scoring.model_alias
    if cfg.hazard.enabled and alias and tracking.alias_version(hazard, alias):
        out.append(
            f"{hazard.registered_model_name}@{alias} is registered but Spark scoring does not "
            "apply it: no time-to-churn or lifetime-value columns, and playbook rules on "
            "value_segment never match (docs/spark.md)"
        )
    uplift = uplift_tracking(cfg)
    if tracking.alias_version(uplift, cfg.tracking.champion_alias):
        out.append(
            f"{uplift.registered_model_name}@{cfg.tracking.champion_alias} is registered but "
            "Spark scoring does not apply it: calls are ranked by the churn model's expected "
            'profit, with no uplift and no "do not contact" (docs/spark.md)'
        )
    return out
