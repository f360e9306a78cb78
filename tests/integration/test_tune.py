"""`churnml tune`: an Optuna sweep whose trials are MLflow runs nested under one parent run."""

from __future__ import annotations

import mlflow
import pytest
from pipeline_runs import run_pipeline

pytestmark = pytest.mark.slow


def test_sweep_nests_trials_and_builds_the_data_once(tiny_dataset, tmp_path):
    completed = run_pipeline(
        "tune",
        [
            "hydra.sweeper.n_trials=2",
            f"paths.root_dir={tmp_path}",
            f"data.path={tiny_dataset}",
        ],
        cwd=tmp_path,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    # The data is validated and the training frame built once a sweep, not once a trial.
    output = completed.stdout + completed.stderr
    assert output.count("training data as built for the previous trial") == 1
    assert output.count("customers: unchanged since it passed") == 1
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(store)
    runs = mlflow.search_runs(search_all_experiments=True)
    parent = runs[runs["tags.job"] == "tune"]
    trials = runs[runs["tags.job"] == "train"]
    assert len(parent) == 1 and len(trials) == 2
    assert (trials["tags.mlflow.parentRunId"] == parent["run_id"].iloc[0]).all()
    assert trials["metrics.val_roc_auc"].notna().all()
    registry = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    assert registry.search_registered_models() == []
