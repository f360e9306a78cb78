"""Shared fixtures: a composed training config pointing every path and MLflow at tmp_path,
and small simulated datasets (generated once per session)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from churnml.config import TrainConfig, compose_config
from churnml.simulate import SimulationParams, simulate_dataset

# Small but long enough for 90 days of history, 12 training cutoffs, validation and test.
TINY_SIMULATION = SimulationParams(
    name="tiny", n_customers=1_500, n_months=12, seed=7, calls_per_month=20.0
)


@pytest.fixture(autouse=True)
def _no_ambient_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never log to a tracking server the developer's shell points at."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated operator (shared read-only by the tests that need raw data)."""
    out = tmp_path_factory.mktemp("raw") / "tiny"
    simulate_dataset(TINY_SIMULATION, out)
    return out


@pytest.fixture
def make_train_config(tmp_path: Path) -> Callable[..., TrainConfig]:
    """Build a typed training config whose paths, MLflow store and run dir are under tmp_path.

    The time-to-churn model is off (`trained_project` and the hazard tests train it): these
    tests are about the churn model, and the second model would double their time."""

    def build(dataset: Path, *overrides: str, root: Path | None = None) -> TrainConfig:
        root = root or tmp_path
        return compose_config(
            "train",
            [
                f"paths.root_dir={root}",
                f"run_dir={root}/logs/run",
                f"data.path={dataset}",
                "data.name=test",
                "explain.max_rows=2000",
                "hazard.enabled=false",
                *overrides,
            ],
        )

    return build


@pytest.fixture(scope="session")
def trained_project(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder (MLflow store, reports) with one champion trained on the tiny data."""
    from churnml.jobs import run_training

    root = tmp_path_factory.mktemp("project")
    overrides = [
        f"paths.root_dir={root}",
        f"run_dir={root}/logs/train",
        f"data.path={tiny_dataset}",
        "data.name=tiny",
        "explain.max_rows=1000",
    ]
    saved_uri = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        run_training(compose_config("train", overrides))
    finally:
        if saved_uri is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved_uri
    return root
