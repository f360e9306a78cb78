"""Spark fixtures: one local session for the whole test session (its start is paid once), and
a 2,000-subscriber simulation shared by the parity tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from churnml.config import SparkConfig
from churnml.simulate import SimulationParams, simulate_dataset

# Small shuffles and no UI: the tests' tables hold thousands of rows, not millions.
TEST_SPARK = SparkConfig(
    master="local[2]",
    app_name="churnml-tests",
    conf={
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.driver.memory": "1g",
        "spark.ui.showConsoleProgress": "false",
    },
)
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
