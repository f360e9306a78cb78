"""Training from Spark: the sample and every feature Spark built for it equal the DuckDB
ones (2,000 simulated subscribers, several cutoffs, competitors resolved on Spark), and the
model trained on them records the engine."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from parity import feature_differences

from churnml.config import compose_config
from churnml.io import dataset_as_of
from churnml.jobs import build_training_frame
from churnml.sampling import sample_customers
from churnml.spark.tables import read_dataset
from churnml.spark.training import sample_rows_sql

pytestmark = pytest.mark.slow

KEYS = ["customer_id", "cutoff"]


def test_spark_sample_and_features_equal_duckdb(spark_training, sim_2k: Path) -> None:
    """Same labelled rows and, for every row, every feature within 1e-9 with the same nulls:
    the parity of the feature engine on the simulation, at the training cutoffs."""
    cfg, sample = spark_training.cfg, spark_training.sample
    assert sample.as_of == dataset_as_of(sim_2k)
    duck_sample = sample_customers(sim_2k, cfg.label, cfg.sampling, cfg.seed, as_of=sample.as_of)
    for column in ("split", "label", "exit_reason", "involuntary", "weight"):
        a = duck_sample.rows[[*KEYS, column]].astype({column: object})
        b = sample.rows[[*KEYS, column]].astype({column: object})
        pd.testing.assert_frame_equal(a, b, check_dtype=False, obj=column)
    assert sample.folds == duck_sample.folds
    assert sample.rows["cutoff"].nunique() >= 4 and len(sample.rows) > 5_000
    params = spark_training.params
    assert params.competitors  # chosen on Spark, from the calls before the test cutoff
    duck_cfg = compose_config(
        "train",
        [
            f"paths.root_dir={spark_training.root}",
            "run_dir=unused",
            f"data.path={sim_2k}",
            f"features.competitors={list(params.competitors)}",
        ],
    )
    duck_frame, duck_columns = build_training_frame(sim_2k, duck_sample, duck_cfg)
    columns = spark_training.columns
    assert columns == duck_columns and len(columns) > 100
    frame = spark_training.frame
    assert feature_differences(duck_frame[[*KEYS, *columns]], frame[[*KEYS, *columns]]) == []
    numeric = frame[columns].select_dtypes("number")
    assert numeric.notna().to_numpy().any() and numeric.isna().to_numpy().any()


def test_training_with_spark_features_records_the_engine(spark_training) -> None:
    result = spark_training.result
    client = mlflow.MlflowClient(tracking_uri=spark_training.cfg.tracking.tracking_uri)
    run = client.get_run(result.run_id)
    assert run.data.params["features.engine"] == "spark"
    assert run.data.tags["feature_engine"] == "spark"
    assert result.model_version is not None


def test_negatives_down_sampled_on_spark_carry_weights(spark, spark_training, sim_2k) -> None:
    """Training negatives kept at the rate by a hash of (seed, customer, cutoff), weight
    1 / rate; positives and the other splits untouched. The sample's SQL alone: no features."""
    from dataclasses import replace

    cfg = spark_training.cfg
    sampling = replace(cfg.sampling, negative_sample_rate=0.25)
    full = spark_training.sample.rows
    plan = full[["cutoff", "split"]].drop_duplicates().reset_index(drop=True)
    read_dataset(spark, str(sim_2k))["customers"].createOrReplaceTempView("customers")
    spark.createDataFrame(
        plan.assign(cutoff=plan["cutoff"].astype("datetime64[us]")),
        "cutoff TIMESTAMP, split STRING",
    ).createOrReplaceTempView("plan")
    rows = spark.sql(sample_rows_sql(plan, cfg.label, sampling, cfg.seed)).toPandas()
    train = rows[rows["split"] == "train"]
    negatives = train[train["label"] == 0]
    assert set(negatives["weight"]) == {4.0}
    assert set(rows.loc[rows["split"] != "train", "weight"]) == {1.0}
    assert set(train.loc[train["label"] == 1, "weight"]) == {1.0}
    # Everything but training negatives is kept whole.
    assert (rows["split"] != "train").sum() == (full["split"] != "train").sum()
    assert (train["label"] == 1).sum() == ((full["split"] == "train") & (full["label"] == 1)).sum()
    kept = len(negatives) / ((full["split"] == "train") & (full["label"] == 0)).sum()
    assert 0.2 < kept < 0.3


def test_time_to_churn_model_on_remote_spark_data_is_refused_upfront() -> None:
    """It reads customers with DuckDB: refused by the settings check, not mid-run."""
    from churnml.settings import SettingsError, check_settings

    remote = ["data.path=hdfs:///telco/raw", "features.engine=spark", "run_dir=unused"]
    with pytest.raises(SettingsError, match=r"hazard\.enabled=True"):
        check_settings(compose_config("train", remote))
    check_settings(compose_config("train", [*remote, "hazard.enabled=false"]))
    check_settings(compose_config("train", ["data.path=/data/telco", "features.engine=spark"]))
