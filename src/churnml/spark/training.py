"""Training from Spark (`features.engine=spark`): the sample's rows and their features are
built on Spark, and only the training frame (labelled rows with features; negatives
down-sampled with weights when `sampling.negative_sample_rate` < 1) comes to the driver,
where LightGBM trains as with DuckDB features.

Cutoffs and folds are planned on the driver from two figures (as_of and the first event
time); eligibility, labels and down-sampling are Spark SQL over the customers table, with the
rules of `churnml.sampling` (docs/sampling.md).
"""

from __future__ import annotations

import logging
import time

import pandas as pd

from churnml.config import LabelConfig, SamplingConfig, TrainConfig
from churnml.features import FeatureParams
from churnml.features.resolve import _NEEDED, choose_competitors, operator_minutes
from churnml.sampling import (
    INVOLUNTARY_REASONS,
    Sample,
    SamplingError,
    plan_cutoffs,
    plan_rolling,
    summarize_sample,
)

log = logging.getLogger(__name__)

LABEL_COLUMNS = ("split", "label", "exit_reason", "involuntary", "weight")


def _texts(values) -> str:
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values) or "NULL"


def sample_rows_sql(
    plan: pd.DataFrame, label: LabelConfig, sampling: SamplingConfig, seed: int
) -> str:
    """Labelled (customer, cutoff) rows over the `customers` and `plan` views: eligible at the
    cutoff (activated `min_tenure_days` before it, not gone), the termination label of the
    window after the gap, leavers in the gap dropped, training negatives kept at
    `negative_sample_rate` by a hash of (seed, customer, cutoff) with weight 1 / rate."""
    rate = float(sampling.negative_sample_rate)
    if not 0 < rate <= 1:
        raise SamplingError(f"sampling.negative_sample_rate must be in (0, 1], got {rate}")
    if label.kind != "termination":
        raise SamplingError(
            f"label.kind={label.kind} is not built on Spark yet: use features.engine=duckdb "
            "(the termination label is)"
        )
    start = f"(p.cutoff + INTERVAL '{int(label.gap_days)}' DAY)"
    end = f"({start} + INTERVAL '{int(label.horizon_days)}' DAY)"
    reason = (
        f"CASE WHEN c.terminated_at > {start} AND c.terminated_at <= {end}"
        " THEN c.termination_reason END"
    )
    # A uniform draw in [0, 1) per row that depends on nothing but the row and the seed.
    draw = f"(pmod(xxhash64({int(seed)}, r.customer_id, r.cutoff), 1000000007) / 1000000007.0D)"
    negative = "r.split = 'train' AND r.label = 0"
    return f"""
        WITH r AS (
          SELECT c.customer_id, p.cutoff, p.split, {reason} AS exit_reason,
            c.terminated_at > p.cutoff AND c.terminated_at <= {start} AS left_in_gap
          FROM customers c JOIN plan p
            ON c.activated_at <= p.cutoff - INTERVAL '{int(sampling.min_tenure_days)}' DAY
           AND (c.terminated_at IS NULL OR c.terminated_at > p.cutoff)),
        l AS (
          SELECT customer_id, cutoff, split, exit_reason,
            CAST(coalesce(exit_reason IN ({_texts(label.reasons)}), false) AS INT) AS label,
            coalesce(exit_reason IN ({_texts(INVOLUNTARY_REASONS)}), false) AS involuntary
          FROM r WHERE NOT coalesce(left_in_gap, false))
        SELECT r.customer_id, r.cutoff, r.split, r.label, r.exit_reason, r.involuntary,
          CASE WHEN {negative} THEN {1.0 / rate!r}D ELSE 1.0D END AS weight
        FROM l r
        WHERE NOT ({negative}) OR {draw} < {rate!r}D
    """


def training_frame_on_spark(
    cfg: TrainConfig, as_of: pd.Timestamp
) -> tuple[Sample, FeatureParams, pd.DataFrame, list[str]]:
    """The sample, the resolved feature settings, the training frame (sample rows with their
    features, on the driver) and the feature columns."""
    from churnml.spark.features import (
        build_features_spark,
        feature_context,
        feature_kinds,
        typed_features,
    )
    from churnml.spark.jobs import _first_and_last_events
    from churnml.spark.session import spark_session
    from churnml.spark.tables import read_dataset

    started = time.perf_counter()
    spark = spark_session(cfg.spark)
    tables = read_dataset(spark, cfg.data.path, cfg.spark.tables)
    starts, _ = _first_and_last_events(tables)
    if starts:
        first_event = min(starts.values())
    else:
        first_event = pd.Timestamp(tables["customers"].selectExpr("min(activated_at)").first()[0])
    if cfg.sampling.scheme == "rolling":
        plan, folds, refit = plan_rolling(cfg.sampling, cfg.label, as_of, first_event)
    elif cfg.sampling.scheme == "single_split":
        plan, folds, refit = plan_cutoffs(cfg.sampling, cfg.label, as_of, first_event), [], []
    else:
        raise SamplingError(f"unknown sampling.scheme {cfg.sampling.scheme!r}")
    tables["customers"].createOrReplaceTempView("customers")
    plan_local = plan.assign(cutoff=pd.to_datetime(plan["cutoff"]).astype("datetime64[us]"))
    spark.createDataFrame(plan_local, "cutoff TIMESTAMP, split STRING").createOrReplaceTempView(
        "plan"
    )
    rows = spark.sql(sample_rows_sql(plan, cfg.label, cfg.sampling, cfg.seed)).persist()

    params = cfg.features
    latest_train_cutoff = (
        min(f.test_cutoff for f in folds)
        if folds
        else plan.loc[plan["split"] == "train", "cutoff"].max()
    )
    calls = tables.get("calls")
    if (
        not params.competitors
        and params.competitor_top_k > 0
        and "calls" in params.families
        and calls is not None
        and set(calls.columns) >= _NEEDED
    ):
        cutoff = pd.Timestamp(latest_train_cutoff)
        ctx = feature_context(spark, {"calls": calls}, params, cutoff, cutoff)
        params = choose_competitors(params, operator_minutes(ctx), cutoff)

    features = build_features_spark(
        spark, tables, rows.select("customer_id", "cutoff", "weight"), params
    )
    kinds = feature_kinds(features)
    joined = rows.join(features, ["customer_id", "cutoff"], "left")
    local = joined.toPandas()
    rows.unpersist()
    local = local.sort_values(["cutoff", "customer_id"], kind="stable").reset_index(drop=True)
    local["cutoff"] = pd.to_datetime(local["cutoff"]).astype("datetime64[us]")
    local["label"] = local["label"].astype("int8")
    local["involuntary"] = local["involuntary"].astype(bool)
    local["exit_reason"] = local["exit_reason"].astype("string")
    sample_rows = local[["customer_id", "cutoff", *LABEL_COLUMNS]]
    frame = pd.concat([sample_rows, typed_features(local, kinds)], axis=1)
    sample = Sample(
        rows=sample_rows,
        summary=summarize_sample(sample_rows),
        as_of=as_of,
        events_start=first_event,
        folds=tuple(folds),
        refit_cutoffs=tuple(refit),
    )
    log.info(
        "sample and features on Spark: %d rows x %d features to the driver in %.1f s",
        len(frame),
        len(kinds),
        time.perf_counter() - started,
    )
    return sample, params, frame, list(kinds)
