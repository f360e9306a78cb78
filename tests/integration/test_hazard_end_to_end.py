"""The time-to-churn model in the jobs: trained, judged and registered beside the churn model by
`churnml train`, used by `churnml score`, shown in the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from churnml.config import compose_config
from churnml.hazard import HazardModel
from churnml.hazard_job import SEGMENTS, hazard_tracking
from churnml.jobs import run_scoring
from churnml.scoring import SCORE_COLUMNS
from churnml.tracking import latest_training_run, load_registered_model, setup_tracking

pytestmark = pytest.mark.slow

HORIZONS = ("30d", "90d", "180d", "365d")


def _score_config(root: Path, dataset: Path, *overrides: str):
    return compose_config(
        "score",
        [
            f"paths.root_dir={root}",
            f"run_dir={root}/logs/score_hazard",
            f"data.path={dataset}",
            "data.name=tiny",
            "scoring.date=2024-11-15",
            *overrides,
        ],
    )


def test_training_registers_the_hazard_model_beside_the_churn_model(trained_project: Path):
    cfg = compose_config("score", [f"paths.root_dir={trained_project}", "data.name=tiny"])
    setup_tracking(cfg.tracking)
    model, _version, run_id = load_registered_model(hazard_tracking(cfg.tracking))
    assert isinstance(model, HazardModel)
    assert hazard_tracking(cfg.tracking).registered_model_name == "churnml_tiny_hazard"
    assert run_id == latest_training_run()
    metrics = MlflowClient().get_run(run_id).data.metrics
    for name in ("hazard_test_concordance", "hazard_test_ibs", "hazard_test_ibs_kaplan_meier"):
        assert np.isfinite(metrics[name])
    assert 0.5 < metrics["hazard_test_concordance"] <= 1.0
    artifacts = {a.path for a in MlflowClient().list_artifacts(run_id, "hazard/plots")}
    assert "hazard/plots/brier.png" in artifacts
    assert any(a.startswith("hazard/plots/calibration_") for a in artifacts)
    page = (trained_project / "reports" / "loss_drivers.html").read_text()
    assert "Time to churn and lifetime value" in page and "Lifetime value by segment" in page


def test_scores_carry_the_time_to_churn_columns(trained_project: Path, tiny_dataset: Path):
    result = run_scoring(
        _score_config(
            trained_project, tiny_dataset, "hazard.contact_ranking=lifetime_value_at_risk"
        )
    )
    scores = pd.read_parquet(result.scores_path)
    assert list(scores.columns[: len(SCORE_COLUMNS)]) == list(SCORE_COLUMNS)
    p = scores[[f"churn_probability_{h}" for h in HORIZONS]].to_numpy()
    assert ((p >= 0) & (p <= 1)).all()
    assert (np.diff(p, axis=1) >= 0).all()  # 30d <= 90d <= 180d <= 365d for every customer
    assert scores["expected_remaining_months"].between(0, 12).all()
    assert (scores["lifetime_value"] >= 0).all() and (scores["lifetime_value_at_risk"] >= 0).all()
    assert set(scores["value_segment"]) <= set(SEGMENTS.values())
    # Ranked by lifetime value at risk among the customers worth calling.
    callable_rows = (scores["action"] != "no action") & (scores["expected_profit"] > 0)
    ranked = scores[callable_rows].sort_values("priority_rank")
    assert ranked["lifetime_value_at_risk"].is_monotonic_decreasing


def test_hazard_off_scores_without_its_columns(trained_project: Path, tiny_dataset: Path):
    result = run_scoring(
        _score_config(
            trained_project, tiny_dataset, "hazard.enabled=false", "scoring.date=2024-11-10"
        )
    )
    scores = pd.read_parquet(result.scores_path)
    assert "churn_probability_90d" not in scores and "lifetime_value" not in scores
