"""Spark fixtures, each paid once per test session: one local Spark session, one
2,000-subscriber simulation, and one model trained on it with Spark features (the training
test, the training-frame parity and the scoring parity all read it)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from spark_settings import TEST_SPARK

from churnml.config import TrainConfig, compose_config
from churnml.simulate import SimulationParams, simulate_dataset

SIM_2K = SimulationParams(
    name="sim2k", n_customers=2_000, n_months=12, seed=11, calls_per_month=20.0
)


@pytest.fixture(scope="session")
def spark():
    """The local Spark session (Java 17+ needed: .ci/run installs it when missing)."""
    if shutil.which("java") is None:
        pytest.fail("the Spark tests need a Java runtime (apt-get install openjdk-17-jre-headless)")
    from churnml.spark.session import spark_session

    session = spark_session(TEST_SPARK)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def sim_2k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("raw") / "sim2k"
    simulate_dataset(SIM_2K, out)
    return out


@dataclass
class SparkTraining:
    """One `churnml train features.engine=spark` run and what Spark handed to the driver."""

    root: Path  # the project folder: MLflow store with the champion
    cfg: TrainConfig
    result: object  # jobs.TrainResult
    sample: object  # sampling.Sample built on Spark
    params: object  # the resolved FeatureParams (competitors chosen on Spark)
    frame: pd.DataFrame  # the training frame as it came from Spark
    columns: list[str]


@pytest.fixture(scope="session")
def spark_training(spark, sim_2k: Path, tmp_path_factory: pytest.TempPathFactory):
    """Train once on the simulation with Spark features, keeping the sample and frame Spark
    built (the very ones LightGBM learnt from) for the parity test."""
    import churnml.spark.training as spark_training_module
    from churnml.jobs import run_training

    root = tmp_path_factory.mktemp("spark_project")
    cfg = compose_config(
        "train",
        [
            f"paths.root_dir={root}",
            f"run_dir={root}/logs/train",
            f"data.path={sim_2k}",
            "data.name=sim2k",
            "features.engine=spark",
            "model=lightgbm_small",
            "explain.enabled=false",
            "hazard.enabled=false",
            "sampling.folds=1",
            "sampling.max_train_cutoffs=3",
        ],
    )
    built = []
    original = spark_training_module.training_frame_on_spark

    def keep(*args, **kwargs):
        built.append(original(*args, **kwargs))
        return built[-1]

    saved_uri = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(spark_training_module, "training_frame_on_spark", keep)
            result = run_training(cfg)
    finally:
        if saved_uri is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved_uri
    assert len(built) == 1, "the Spark training path was not taken"
    sample, params, frame, columns = built[0]
    return SparkTraining(root, cfg, result, sample, params, frame, columns)
