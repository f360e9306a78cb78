"""Training from Spark: the sample and its features built on Spark equal the DuckDB ones,
and a model trained on them records the engine."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from parity import feature_differences

from churnml.io import dataset_as_of
from churnml.jobs import build_training_frame, run_training
from churnml.sampling import sample_customers
from churnml.spark.training import training_frame_on_spark

pytestmark = pytest.mark.slow


def test_spark_sample_and_frame_equal_duckdb(spark, make_train_config, tiny_dataset: Path):
    """Same labelled rows (no down-sampling) and the same features for every row."""
    cfg = make_train_config(tiny_dataset, "features.engine=spark", "features.competitors=[]")
    as_of = dataset_as_of(tiny_dataset)
    sample, params, frame, columns = training_frame_on_spark(cfg, as_of)
    duck_sample = sample_customers(tiny_dataset, cfg.label, cfg.sampling, cfg.seed, as_of=as_of)
    keys = ["customer_id", "cutoff"]
    for column in ("split", "label", "exit_reason", "involuntary", "weight"):
        a = duck_sample.rows[[*keys, column]].astype({column: object})
        b = sample.rows[[*keys, column]].astype({column: object})
        pd.testing.assert_frame_equal(a, b, check_dtype=False, obj=column)
    assert sample.folds == duck_sample.folds
    duck_cfg = make_train_config(tiny_dataset, f"features.competitors={list(params.competitors)}")
    duck_frame, duck_columns = build_training_frame(tiny_dataset, duck_sample, duck_cfg)
    assert columns == duck_columns
    assert feature_differences(duck_frame[[*keys, *columns]], frame[[*keys, *columns]]) == []


def test_negatives_down_sampled_on_spark_carry_weights(spark, make_train_config, tiny_dataset):
    cfg = make_train_config(
        tiny_dataset,
        "features.engine=spark",
        "sampling.negative_sample_rate=0.25",
        "features.families=[account]",
    )
    _, _, frame, _ = training_frame_on_spark(cfg, dataset_as_of(tiny_dataset))
    train = frame[frame["split"] == "train"]
    negatives = train[train["label"] == 0]
    assert set(negatives["weight"]) == {4.0}
    assert set(frame.loc[frame["split"] != "train", "weight"]) == {1.0}
    assert set(train.loc[train["label"] == 1, "weight"]) == {1.0}
    everyone = replace(cfg.sampling, negative_sample_rate=1.0)
    full = sample_customers(tiny_dataset, cfg.label, everyone, cfg.seed)
    kept = len(negatives) / ((full.rows["split"] == "train") & (full.rows["label"] == 0)).sum()
    assert 0.2 < kept < 0.3


def test_training_with_spark_features_records_the_engine(spark, make_train_config, tiny_dataset):
    cfg = make_train_config(
        tiny_dataset,
        "features.engine=spark",
        "model=lightgbm_small",
        "explain.enabled=false",
        "sampling.folds=1",
        "sampling.max_train_cutoffs=3",
        "features.families=[account,complaints,transfers]",
    )
    result = run_training(cfg)
    run = mlflow.get_run(result.run_id)
    assert run.data.params["features.engine"] == "spark"
    assert run.data.tags["feature_engine"] == "spark"
    assert result.model_version is not None
