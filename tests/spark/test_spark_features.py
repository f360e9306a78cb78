"""Parity of the Spark engine with DuckDB: every feature within 1e-9, same nulls, same order,
on the hand-written tiny dataset (the 2,000-subscriber simulation is compared at the training
cutoffs in test_spark_training.py, on the frame the model learnt from)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from parity import feature_differences
from tiny_dataset import write_tiny_dataset

from churnml.features import FeatureParams, build_features
from churnml.spark.features import SparkDialect, build_features_spark, features_to_pandas
from churnml.spark.tables import read_dataset

pytestmark = pytest.mark.slow


def _both(spark, dataset: Path, spine: pd.DataFrame, params: FeatureParams):
    duck = build_features(dataset, spine, params)
    frame = build_features_spark(spark, read_dataset(spark, str(dataset)), spine, params)
    return duck, features_to_pandas(frame, spine)


def test_tiny_dataset_parity(spark, tmp_path: Path) -> None:
    """Hand-written edge cases (missing values, plan changes, arrears, every family), two
    cutoffs, a repeated spine row and down-sampling weights (the value tier counts them)."""
    dataset = write_tiny_dataset(tmp_path / "tiny", "parquet")
    ids = ["C1", "C2", "C3", "C4", "C5", "C6"]
    spine = pd.DataFrame(
        {
            "customer_id": [*ids, *ids, "C3"],
            "cutoff": pd.to_datetime(["2024-06-15"] * 6 + ["2024-05-01"] * 6 + ["2024-06-15"]),
            "weight": [1.0, 4.0, 1.0, 2.5, 1.0, 1.0] * 2 + [1.0],
        }
    )
    duck, spark_frame = _both(spark, dataset, spine, FeatureParams(competitors=["beta", "gamma"]))
    assert duck.shape[1] > 100
    assert feature_differences(duck, spark_frame) == []
    # Not vacuous: the tiny data give values and nulls in both engines.
    numeric = spark_frame.select_dtypes("number")
    assert numeric.notna().to_numpy().any() and numeric.isna().to_numpy().any()


def test_spark_dialect_types_decimal_literals_as_double() -> None:
    """Spark reads 86400.0 as DECIMAL (division keeps 6 decimals); DuckDB computes in DOUBLE.
    Literals become DOUBLE, and text in quotes is left as it is."""
    sql = "SELECT x / 86400.0, 'a 1.5 b', `c1.5`, v_30, 2.5e-3, 0.005 FROM t WHERE y > 1.0D"
    assert SparkDialect().finalize(sql) == (
        "SELECT x / 86400.0D, 'a 1.5 b', `c1.5`, v_30, 2.5e-3, 0.005D FROM t WHERE y > 1.0D"
    )
