"""Snapshot datasets: typing, labels, derived columns, splits and the shipped public datasets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from churnml.config import DataConfig, compose_config
from churnml.io import DatasetError
from churnml.jobs import run_training
from churnml.snapshot import read_snapshot, split_snapshot
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
