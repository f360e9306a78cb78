"""The sample's churn rate per cutoff matches the simulator's true probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from churnml.config import LabelConfig, SamplingConfig
from churnml.sampling import sample_customers
from churnml.simulate import SimulationParams, simulate_dataset
from churnml.simulate.truth import window_probability

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def medium_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("raw") / "medium"
    simulate_dataset(
        SimulationParams(
            name="medium", n_customers=8_000, n_months=15, seed=11, calls_per_month=10.0
        ),
        out,
    )
    return out


@pytest.mark.parametrize("horizon_days", [27, 60])
def test_churn_rate_per_cutoff_matches_truth(medium_dataset: Path, horizon_days: int):
    label = LabelConfig(horizon_days=horizon_days)
    sample = sample_customers(medium_dataset, label, SamplingConfig(max_train_cutoffs=20), seed=1)
    rows = sample.rows
    rows["truth"] = window_probability(medium_dataset, rows, horizon_days).to_numpy()
    assert rows["truth"].notna().all()
    z_scores = []
    for _, part in rows.groupby("cutoff"):
        expected = part["truth"].sum()
        spread = np.sqrt((part["truth"] * (1 - part["truth"])).sum())
        z_scores.append((part["label"].sum() - expected) / spread)
    z_scores = np.array(z_scores)
    assert len(z_scores) >= 6
    assert np.all(np.abs(z_scores) < 4), z_scores.round(2)
    # No systematic bias either: the mean z of independent cutoffs stays near 0.
    assert abs(z_scores.mean()) < 3 / np.sqrt(len(z_scores)), z_scores.round(2)


def test_hidden_causes_put_the_truth_several_points_above_the_tables(medium_dataset: Path):
    """What the tables record (hidden causes at their mean) ranks the 60-day churners clearly
    below the truth, as on real data, while the label rates still match the truth above."""
    label = LabelConfig(horizon_days=60)
    rows = sample_customers(
        medium_dataset, label, SamplingConfig(max_train_cutoffs=20), seed=1
    ).rows
    truth = window_probability(medium_dataset, rows, 60)
    recorded = window_probability(medium_dataset, rows, 60, column="p_voluntary_recorded")
    gaps = []
    for _, part in rows.groupby("cutoff"):
        idx = part.index
        gaps.append(
            roc_auc_score(part["label"], truth[idx]) - roc_auc_score(part["label"], recorded[idx])
        )
    assert 0.02 < np.mean(gaps) < 0.15, np.round(gaps, 3)
