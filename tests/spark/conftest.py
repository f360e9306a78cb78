"""Spark fixtures: one local session for the whole test session (its start is paid once), and
a 2,000-subscriber simulation shared by the parity tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from spark_settings import TEST_SPARK

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
