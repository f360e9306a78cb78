"""Shared fixtures: a composed training config pointing every path and MLflow at tmp_path,
and small simulated datasets (generated once per session)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from churnml.config import TrainConfig, register_configs, to_object
from churnml.simulate import SimulationParams, simulate_dataset

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

# Small but long enough for 90 days of history, 12 training cutoffs, validation and test.
TINY_SIMULATION = SimulationParams(
    name="tiny", n_customers=1_500, n_months=12, seed=7, calls_per_month=20.0
)


def compose_config(config_name: str, overrides: list[str]):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides)


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
    """Build a typed training config whose paths, MLflow store and run dir are under tmp_path."""

    def build(dataset: Path, *overrides: str, root: Path | None = None) -> TrainConfig:
        root = root or tmp_path
        cfg = compose_config(
            "train",
            [
                f"paths.root_dir={root}",
                f"run_dir={root}/logs/run",
                f"data.path={dataset}",
                "data.name=test",
                "explain.max_rows=2000",
                *overrides,
            ],
        )
        return to_object(cfg)

    return build
