"""Rolling evaluation end to end: short histories train and register; the gate's rows."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from churnml.jobs import run_training
from churnml.simulate import SimulationParams, simulate_dataset

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("months", "overrides"),
    [
        (6, ()),
        (8, ()),
        # Cutoffs from April only: two labelled cutoffs a month apart, no room for an embargo.
        (6, ("sampling.start=2024-04-01",)),
    ],
    ids=["6_months", "8_months", "6_months_calls_only"],
)
def test_short_histories_train_and_register(
    months: int, overrides: tuple[str, ...], make_train_config, tmp_path: Path
):
    dataset = tmp_path / "raw" / f"m{months}"
    simulate_dataset(
        SimulationParams(
            name="short", n_customers=1_500, n_months=months, seed=7, calls_per_month=20.0
        ),
        dataset,
    )
    result = run_training(make_train_config(dataset, "explain.max_rows=500", *overrides))
    assert result.model_version is not None and result.promoted
    metrics = result.metrics
    assert metrics["test_folds"] >= 1
    assert 0.5 < metrics["test_roc_auc"] <= 1.0
    assert "test_truth_roc_auc" in metrics  # on the same rows as test_roc_auc

    client = MlflowClient()
    version = client.get_model_version("churnml_test", result.model_version)
    assert "Refit training cutoffs" in version.description
    assert "Fold test ROC AUC" in version.description
    run = client.get_run(result.run_id)
    assert "out-of-time fold" in run.data.tags["evaluation"]
    folds = pd.read_csv(client.download_artifacts(result.run_id, "evaluation/folds.csv"))
    assert len(folds) == metrics["test_folds"]
    if overrides:
        assert not folds["embargoed"].any()
        assert "too short for an embargo" in run.data.tags["evaluation"]
    # The refit learnt from every labelled cutoff, the tested ones included.
    refit_window = version.description.split("Refit training cutoffs: ")[1].split(" (")[0]
    refit_last = pd.Timestamp(refit_window.split(" to ")[1])
    assert refit_last >= pd.to_datetime(folds["tested_cutoff"]).max()


def test_rolling_gate_judges_both_models_on_the_newest_fold(tiny_dataset: Path, make_train_config):
    first = run_training(make_train_config(tiny_dataset))
    second = run_training(make_train_config(tiny_dataset, "model.params.num_leaves=7"))
    assert first.promoted
    challenger = f"challenger test_roc_auc {second.metrics['fold1_test_roc_auc']:.4f}"
    assert challenger in second.decision
    # The first refit learnt the newest cutoff's labels: its settings are retrained on the
    # challenger's fold instead of scoring the refit on rows it saw.
    assert "neither model saw the test cutoff" in second.decision
    decision = json.loads(
        Path(MlflowClient().download_artifacts(second.run_id, "registry/decision.json")).read_text()
    )
    assert decision["champion_version"] == first.model_version
