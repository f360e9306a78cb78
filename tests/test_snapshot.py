"""Snapshot datasets: typing, labels, derived columns, splits and the shipped public datasets."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from churnml import jobs
from churnml.config import DataConfig, compose_config
from churnml.io import DatasetError
from churnml.jobs import run_training
from churnml.snapshot import choose_model, read_snapshot, split_snapshot
from churnml.validation import ContractViolation

ROOT = Path(__file__).resolve().parents[1]


def _ibm() -> DataConfig:
    return compose_config("train", ["data=ibm_telco", f"paths.root_dir={ROOT}"]).data


def test_ibm_telco_types_and_labels():
    data = read_snapshot(ROOT / "datasets/ibm_telco/Telco-Customer-Churn.csv", _ibm())
    frame = data.frame
    assert len(frame) == 7043 and frame["customer_id"].is_unique
    assert frame["label"].sum() == 1869  # SOURCE.md: 1,869 churners
    assert frame["TotalCharges"].dtype == "float64"
    assert frame["TotalCharges"].isna().sum() == 11  # the blank tenure-0 rows
    assert isinstance(frame["Contract"].dtype, pd.CategoricalDtype)
    assert isinstance(frame["SeniorCitizen"].dtype, pd.CategoricalDtype)
    assert "Churn" not in data.feature_columns and "customerID" not in data.feature_columns


def test_bigml_derived_columns_and_row_ids():
    cfg = compose_config("train", ["data=bigml_churn", f"paths.root_dir={ROOT}"])
    data = read_snapshot(cfg.data.path, cfg.data)
    frame = data.frame
    assert frame["customer_id"].iloc[0] == "row_0"
    assert frame["label"].sum() == 388  # SOURCE.md: 388 churners in the 80 % file
    expected = frame[
        ["Total day charge", "Total eve charge", "Total night charge", "Total intl charge"]
    ].sum(axis=1)
    pd.testing.assert_series_equal(frame["total_charge"], expected, check_names=False)


def test_bad_snapshot_input_is_named(tmp_path: Path):
    path = tmp_path / "snap.csv"
    pd.DataFrame({"id": ["a", "a", "b"], "y": ["Yes", "No", "No"], "x": [1, 2, 3]}).to_csv(
        path, index=False
    )
    config = DataConfig(
        name="s",
        kind="snapshot",
        path=str(path),
        id_column="id",
        label_column="y",
        positive_label="Yes",
    )
    with pytest.raises(ContractViolation, match=r"snapshot\.id: unique"):
        read_snapshot(path, config)
    config.derived_columns = {"z": "`nope` + 1"}
    config.id_column = None
    with pytest.raises(DatasetError, match=r"derived_columns\.z"):
        read_snapshot(path, config)


def test_stratified_split_keeps_the_churn_rate():
    data = read_snapshot(ROOT / "datasets/ibm_telco/Telco-Customer-Churn.csv", _ibm())
    splits = split_snapshot(data.frame, 0.25, seed=1)
    rate = data.frame["label"].mean()
    assert len(splits["test"]) == pytest.approx(0.25 * 7043, abs=1)
    for part in splits.values():
        assert part["label"].mean() == pytest.approx(rate, abs=0.005)
    ids = [set(p["customer_id"]) for p in splits.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])


@pytest.mark.slow
def test_snapshot_training_with_cross_validation(tmp_path: Path):
    cfg = compose_config(
        "train",
        [
            "data=ibm_telco",
            f"data.path={ROOT}/datasets/ibm_telco/Telco-Customer-Churn.csv",
            "data.cv_folds=3",
            "data.cv_repeats=1",
            "model.search_budget_s=10",  # model=auto: a short search keeps the test quick
            f"paths.root_dir={tmp_path}",
            "explain.max_rows=500",
        ],
    )
    result = run_training(cfg)
    metrics = MlflowClient().get_run(result.run_id).data.metrics
    assert metrics["cv_roc_auc_mean"] > 0.8 and metrics["cv_roc_auc_std"] > 0
    assert metrics["test_roc_auc"] > 0.8
    assert result.report_path.exists()


@pytest.mark.parametrize("dataset", ["ibm_telco", "bigml_churn"])
def test_public_datasets_register_apart_from_the_scoring_champion(dataset):
    """Trying a public dataset must not replace the model nightly scoring loads."""
    default = compose_config("train", [f"paths.root_dir={ROOT}"]).tracking
    public = compose_config("train", [f"data={dataset}", f"paths.root_dir={ROOT}"]).tracking
    assert public.registered_model_name == f"churnml_{dataset}"
    assert default.registered_model_name == "churnml_telco_sim"
    chosen = compose_config(
        "train",
        [f"data={dataset}", f"paths.root_dir={ROOT}", "tracking.registered_model_name=mine"],
    )
    assert chosen.tracking.registered_model_name == "mine"


def test_a_users_csv_gets_model_auto_by_default():
    cfg = compose_config(
        "train", ["data.kind=snapshot", "data.path=/tmp/my.csv", "data.label_column=y"]
    )
    assert cfg.model.name == "auto" and "small_data" in cfg.model.candidates
    assert cfg.model.search_budget_s == 120


def _synthetic_snapshot(n: int = 800, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    plan = rng.choice(["a", "b", "c"], size=n)
    logit = 1.2 * x1 - 0.8 * x1 * x2 + (plan == "c") - 1.5
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int8")
    return pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "label": label,
            "x1": x1,
            "x2": x2,
            "noise": rng.normal(size=n),
            "plan": pd.Categorical(plan),
        }
    )


def test_model_auto_scores_every_candidate_and_trains_the_best():
    frame = _synthetic_snapshot()
    model = compose_config("train", ["model=auto"]).model
    model = replace(model, search_budget_s=3, search_max_trials=4, search_folds=3)
    model.params["num_threads"] = 1
    choice = choose_model(frame, ["x1", "x2", "noise", "plan"], model, seed=3)
    table = choice.table.set_index("candidate")
    assert list(table.index) == ["default", "small_data", "optuna"]
    assert 1 <= choice.trials <= 4
    assert choice.chosen == table["cv_roc_auc"].idxmax()
    assert choice.model.name == "lightgbm" and not choice.model.candidates
    for key, value in table.loc[choice.chosen, "params"].items():
        assert choice.model.params[key] == value
    assert table["cv_roc_auc"].min() > 0.6


def test_model_auto_never_chooses_on_the_test_rows(monkeypatch: pytest.MonkeyPatch, tmp_path):
    frame = _synthetic_snapshot(600)
    path = tmp_path / "mine.csv"
    frame.drop(columns=["customer_id"]).assign(id=frame["customer_id"]).to_csv(path, index=False)
    cfg = compose_config(
        "train",
        [
            f"paths.root_dir={tmp_path}",
            "data.kind=snapshot",
            f"data.path={path}",
            "data.id_column=id",
            "data.label_column=label",
            "data.positive_label=1",
            "explain.enabled=false",
            "tracking.register=false",
            "model.search_budget_s=0",
            "model.search_folds=3",
        ],
    )
    seen: list[set] = []
    real = jobs.choose_model

    def recording(rows, *args, **kwargs):
        seen.append(set(rows["customer_id"]))
        return real(rows, *args, **kwargs)

    monkeypatch.setattr(jobs, "choose_model", recording)
    result = run_training(cfg)
    test_ids = set(
        split_snapshot(read_snapshot(path, cfg.data).frame, cfg.data.test_size, cfg.seed)["test"][
            "customer_id"
        ]
    )
    assert len(seen) == 1 and seen[0] and seen[0].isdisjoint(test_ids)
    assert len(seen[0]) + len(test_ids) == len(frame)
    assert "auto_cv_roc_auc" in result.metrics
    run = MlflowClient().get_run(result.run_id)
    assert run.data.params["model.name"] == "auto"
    assert "CV AUC" in run.data.tags["model_choice"]
