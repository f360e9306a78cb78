"""Batch scoring on Spark: the project's own scoring function (`scoring.score_rows`) on every
partition with mapInPandas, the few steps that rank customers against each other as Spark
windows, the scores checked and published with the local guarantees.

Driver: the model (broadcast to the executors), the exact-SHAP reasons of the top of the call
lists (`scoring.exact_reasons_rows` customers of each list), the contact list and the PSI
histograms (bins, not rows). Executors: features, probabilities, reasons, actions, ranks,
the Parquet files.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from churnml import scoring
from churnml.config import EvaluationConfig, ScoringConfig
from churnml.contract import SCORE_COLUMNS, SCORE_NULLABLE, VALUE_TIERS
from churnml.features.account import value_tier_sql
from churnml.features.params import FeatureParams
from churnml.model import ChurnModel
from churnml.spark.features import SparkDialect, features_to_pandas
from churnml.spark.session import make_dirs, path_exists, remove, rename, write_text
from churnml.validation import (
    RULE_ELIGIBLE,
    RULE_FINITE_SCORE,
    RULE_NOT_NULL,
    RULE_UNIQUE,
    RuleFailure,
    ScoresInvalid,
    ValidationReport,
    rule_between,
    rule_one_of,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

ROW_SCHEMA = (
    "customer_id STRING, churn_probability DOUBLE, value_tier STRING, revenue_at_risk DOUBLE,"
    " reason_1 STRING, reason_2 STRING, reason_3 STRING, main_cause STRING,"
    " reason_method STRING, monthly_revenue DOUBLE, expected_profit DOUBLE, action STRING,"
    " script STRING"
)
SCORES_FILE = "scores.parquet"


def _row_scorer(model_bc, settings: ScoringConfig, decision: EvaluationConfig):
    """The mapInPandas function: `score_rows` on each batch of a partition's features."""

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from churnml.spark.session import quiet_pandas_warning

        quiet_pandas_warning()
        model = model_bc.value
        for batch in batches:
            if len(batch):
                rows = scoring.score_rows(model, batch, settings, decision)
                yield rows[list(scoring.ROW_COLUMNS)]

    return score


def _with_value_tier(features: DataFrame, model: ChurnModel, settings: ScoringConfig):
    """Features with `value_tier` (by the revenue feature among all scored customers) when the
    feature table lacks it, with the feature library's rule."""
    if "value_tier" in features.columns:
        return features
    cuts = FeatureParams(**model.settings.get("features", {})).value_tier_cuts
    revenue = settings.revenue_feature if settings.revenue_feature in features.columns else "NULL"
    tier = value_tier_sql(
        f"CAST({revenue} AS DOUBLE)", list(cuts), "cutoff", "1.0D", dialect=SparkDialect()
    )
    return features.selectExpr("*", f"{tier} AS value_tier")


def _exact_top(
    spark: SparkSession,
    rows: DataFrame,
    features: DataFrame,
    model: ChurnModel,
    settings: ScoringConfig,
    decision: EvaluationConfig,
) -> DataFrame | None:
    """Exact-SHAP reasons for the top of both call lists (by revenue at risk and by expected
    profit, the ranking's tie-breaks), computed on the driver: a few thousand rows."""
    if not scoring.needs_exact_reasons(model, settings):
        return None
    n = settings.exact_reasons_rows
    ids = set()
    for key in ("revenue_at_risk", "expected_profit"):
        top = rows.orderBy(
            rows[key].desc(), rows["churn_probability"].desc(), rows["customer_id"].asc()
        ).limit(n)
        ids.update(r[0] for r in top.select("customer_id").collect())
    wanted = spark.createDataFrame(pd.DataFrame({"customer_id": sorted(ids)}), "customer_id STRING")
    local = features_to_pandas(features.join(wanted.hint("broadcast"), "customer_id"))
    exact = scoring.score_rows(model, local, settings, decision, exact=True)
    log.info("reasons from exact SHAP for the %d customers at the top of the call lists", len(ids))
    keep = ["customer_id", *scoring.REASON_COLUMNS]
    schema = ", ".join(f"{c} STRING" for c in keep)
    return spark.createDataFrame(
        exact[keep].astype(object).where(exact[keep].notna(), None), schema
    )


def score_features(
    spark: SparkSession,
    features: DataFrame,
    model: ChurnModel,
    scoring_date: pd.Timestamp,
    model_name: str,
    model_version: str,
    run_id: str,
    settings: ScoringConfig,
    decision: EvaluationConfig,
    cached: list | None = None,
) -> DataFrame:
    """The scores table of `scoring.score_frame`, as a Spark DataFrame. The per-customer rows
    are persisted (read by the top-N choice and the rankings) and added to `cached` with the
    broadcast model: the caller unpersists them when the scores are written."""
    features = _with_value_tier(features, model, settings)
    model_bc = spark.sparkContext.broadcast(model)
    rows = features.mapInPandas(_row_scorer(model_bc, settings, decision), ROW_SCHEMA).persist()
    if cached is not None:
        cached.extend([rows, model_bc])  # the broadcast model too: each run sends its own
    exact = _exact_top(spark, rows, features, model, settings, decision)
    if exact is not None:
        e = exact.withColumnRenamed("customer_id", "_exact_id")
        cols = [
            (
                f"CASE WHEN _exact_id IS NULL THEN r.{c} ELSE e.{c} END AS {c}"
                if c in scoring.REASON_COLUMNS
                else f"r.{c}"
            )
            for c in scoring.ROW_COLUMNS
        ]
        joined = rows.alias("r").join(
            e.alias("e").hint("broadcast"), rows["customer_id"] == e["_exact_id"], "left"
        )
        rows = joined.selectExpr(*cols)
    rows.createOrReplaceTempView("score_rows")
    date = pd.Timestamp(scoring_date).isoformat(sep=" ")

    def lit(value: str) -> str:  # a Spark SQL string literal (backslash escapes are on)
        return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"

    # The two rankings over all customers (single Spark windows): risk deciles with ties by id,
    # and the call priority of `scoring.rank_by_priority`.
    scores = spark.sql(
        f"""
        WITH ranked AS (
          SELECT *,
            CAST(row_number() OVER (ORDER BY churn_probability DESC, customer_id) AS BIGINT) - 1
              AS _risk_rank,
            count(*) OVER () AS _n,
            CAST(row_number() OVER (ORDER BY
              (action != {lit(scoring.NO_ACTION)} AND expected_profit > 0) DESC,
              expected_profit DESC, churn_probability DESC, customer_id) AS BIGINT)
              AS priority_rank
          FROM score_rows)
        SELECT TIMESTAMP '{date}' AS scoring_date, *,
          format_string('R%02d', least(CAST(_risk_rank * 10 DIV greatest(_n, 1) AS INT), 9) + 1)
            AS risk_band,
          {lit(model_name)} AS model_name, {lit(model_version)} AS model_version,
          {lit(run_id)} AS run_id
        FROM ranked
        """
    )
    columns = [*SCORE_COLUMNS, *scoring.EXTRA_COLUMNS]
    return scores.select(*columns)


def check_scores_spark(scores: DataFrame, expected: DataFrame) -> None:
    """The checks of `validation.check_scores` as Spark aggregates (no row reaches the driver
    but a few example ids): required columns not null, probabilities in [0, 1], revenue at
    risk >= 0, tiers A-D, no infinity, ids unique, exactly the eligible customers."""
    required = [c for c in SCORE_COLUMNS if c not in SCORE_NULLABLE]
    numeric = [f.name for f in scores.schema.fields if f.dataType.simpleString() == "double"]
    tiers = ", ".join(f"'{t}'" for t in VALUE_TIERS)
    rules = [(c, RULE_NOT_NULL, f"{c} IS NULL") for c in required]
    rules += [
        ("churn_probability", rule_between(0, 1), "NOT churn_probability BETWEEN 0 AND 1"),
        ("revenue_at_risk", ">= 0", "revenue_at_risk < 0"),
        ("value_tier", rule_one_of(VALUE_TIERS), f"value_tier NOT IN ({tiers})"),
    ]
    rules += [(c, RULE_FINITE_SCORE, f"abs({c}) = double('inf')") for c in numeric]
    scores.createOrReplaceTempView("_scores_check")
    expected.selectExpr("CAST(customer_id AS STRING) AS customer_id").createOrReplaceTempView(
        "_scores_expected"
    )
    spark = scores.sparkSession
    sums = ", ".join(f"sum(CASE WHEN {cond} THEN 1 ELSE 0 END)" for _, _, cond in rules)
    counts = spark.sql(f"SELECT {sums} FROM _scores_check").first()
    failures = []
    for (column, rule, cond), n in zip(rules, counts, strict=True):
        if n:
            examples = spark.sql(f"SELECT customer_id FROM _scores_check WHERE {cond} LIMIT 5")
            failures.append(
                RuleFailure("scores", column, rule, int(n), [str(r[0]) for r in examples.collect()])
            )
    dupes = spark.sql(
        "SELECT customer_id, count(*) AS n FROM _scores_check GROUP BY customer_id HAVING n > 1"
    )
    for rule, frame in (
        (RULE_UNIQUE, dupes),
        (
            RULE_ELIGIBLE,
            spark.sql(
                "SELECT customer_id FROM _scores_check LEFT ANTI JOIN _scores_expected"
                " USING (customer_id) UNION ALL SELECT customer_id FROM _scores_expected"
                " LEFT ANTI JOIN _scores_check USING (customer_id)"
            ),
        ),
    ):
        n = frame.count()
        if n:
            ids = [str(r[0]) for r in frame.limit(5).collect()]
            failures.append(RuleFailure("scores", "customer_id", rule, int(n), ids))
    if failures:
        for failure in failures:
            log.error("scores contract: %s", failure.message())
        raise ScoresInvalid(ValidationReport(False, failures, {"scores": scores.count()}, None))


def _histogram(columns: list[str], edges: dict[str, np.ndarray]):
    """mapInPandas: per partition, numpy's histogram of each column's finite values."""

    def count(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        totals = {c: np.zeros(len(edges[c]) - 1, dtype=np.int64) for c in columns}
        for batch in batches:
            for c in columns:
                values = pd.to_numeric(batch[c], errors="coerce").to_numpy(float)
                values = values[np.isfinite(values)]
                totals[c] += np.histogram(values, edges[c])[0]
        yield pd.DataFrame(
            [(c, i, int(n)) for c in columns for i, n in enumerate(totals[c])],
            columns=["column", "bin", "n"],
        )

    return count


def monitor_population_spark(
    model: ChurnModel, features: DataFrame, scores: DataFrame, settings: ScoringConfig
) -> dict:
    """`scoring.monitor_population` with each index from histograms summed over the
    partitions (the same numbers as numpy on all rows): one pass over the scores and one over
    the features for all the columns the report names, not one Spark job a column."""
    wanted: dict[str, np.ndarray] = {}

    def ask(column: str, reference: np.ndarray) -> float:
        wanted[column] = reference[np.isfinite(reference)]
        return 0.0

    scoring.monitoring_report(model, settings, ask)  # which columns, against which reference
    edges = {c: scoring.stability_edges(r) for c, r in wanted.items() if len(r)}
    binned = {c: e for c, e in edges.items() if len(e) >= 2}
    hists = {c: np.zeros(len(e) - 1, dtype=np.int64) for c, e in binned.items()}
    for frame, columns in (
        (scores, [c for c in binned if c == "churn_probability"]),
        (features, [c for c in binned if c != "churn_probability"]),
    ):
        if not columns:
            continue
        counts = (
            frame.select(*columns)
            .mapInPandas(_histogram(columns, binned), "column STRING, bin INT, n LONG")
            .groupBy("column", "bin")
            .sum("n")
            .collect()
        )
        for column, i, n in counts:
            hists[column][i] = n

    def psi(column: str, reference: np.ndarray) -> float:
        reference = reference[np.isfinite(reference)]
        if len(reference) == 0:
            return float("nan")
        if column not in binned:
            # One reference value: stable only if every current value is that value.
            frame = scores if column == "churn_probability" else features
            stats = frame.selectExpr(
                f"count(CASE WHEN NOT isnan({column}) AND abs({column}) != double('inf')"
                f" THEN 1 END) AS n",
                f"max(abs({column} - {float(reference[0])!r}D)) AS gap",
            ).first()
            if not stats["n"]:
                return float("nan")
            tolerance = 1e-8 + 1e-5 * abs(reference[0])
            return 0.0 if stats["gap"] <= tolerance else float("inf")
        if hists[column].sum() == 0:
            return float("nan")
        return scoring.stability_from_counts(reference, binned[column], hists[column])

    return scoring.monitoring_report(model, settings, psi)


def publish_scores_spark(
    spark: SparkSession,
    folder: str,
    scores: DataFrame,
    expected: DataFrame,
    text_files,
) -> None:
    """Write the date's scores (Parquet, by priority), check them, add the files that
    `text_files(written scores)` gives (contact list, monitoring), then move the folder into
    place: a failed or refused run leaves the previous folder as it was and no staging folder
    (any Hadoop file system; on local disk the scoring lock keeps two runs apart)."""
    folder = folder.rstrip("/")
    parent, leaf = folder.rsplit("/", 1)
    staging = f"{parent}/.{leaf}.{uuid.uuid4().hex[:12]}.tmp"
    make_dirs(spark, parent)
    try:
        scores.orderBy("priority_rank").write.mode("error").parquet(f"{staging}/{SCORES_FILE}")
        written = spark.read.parquet(f"{staging}/{SCORES_FILE}")
        check_scores_spark(written, expected)  # what is published is what was checked
        for name, text in text_files(written).items():
            write_text(spark, f"{staging}/{name}", text)
        old = f"{parent}/.{leaf}.old-{os.getpid()}"
        if path_exists(spark, folder):
            remove(spark, old)
            rename(spark, folder, old)
            try:
                rename(spark, staging, folder)
            except OSError:
                rename(spark, old, folder)  # put the earlier set back
                raise
            remove(spark, old)
        else:
            rename(spark, staging, folder)
    finally:
        remove(spark, staging)


def monitoring_text(report: dict) -> str:
    return json.dumps(report, indent=2, sort_keys=True, default=float)
