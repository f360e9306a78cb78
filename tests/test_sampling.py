"""Point-in-time sampling: cutoffs, eligibility, labels, splits, down-sampling, summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnml.config import LabelConfig, SamplingConfig
from churnml.sampling import (
    SamplingError,
    downsample_negatives,
    eligible_customers,
    plan_cutoffs,
    sample_customers,
    summarize_sample,
)

AS_OF = pd.Timestamp("2025-12-31 23:59:59")


def _write(
    dataset: Path,
    customers: pd.DataFrame,
    calls: pd.DataFrame | None = None,
    payments: pd.DataFrame | None = None,
) -> Path:
    dataset.mkdir(parents=True, exist_ok=True)
    customers.to_parquet(dataset / "customers.parquet", index=False)
    if calls is not None:
        calls.to_parquet(dataset / "calls.parquet", index=False)
    if payments is not None:
        payments.to_parquet(dataset / "payments.parquet", index=False)
    (dataset / "manifest.json").write_text(json.dumps({"as_of": AS_OF.isoformat()}))
    return dataset


def _customers(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows, columns=["customer_id", "activated_at", "terminated_at", "termination_reason"]
    )
    frame["activated_at"] = pd.to_datetime(frame["activated_at"])
    frame["terminated_at"] = pd.to_datetime(frame["terminated_at"])
    return frame.assign(initial_plan_id="P1", payment_type="postpaid")


def _calls(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "started_at", "direction"])
    frame["started_at"] = pd.to_datetime(frame["started_at"], format="ISO8601")
    return frame.assign(kind="voice", duration_s=60, dropped=False)


# Calls from January give the data its start; cutoffs from April (90 days of history).
BASE_CALLS = [("A", "2025-01-02 10:00", "out")]


def test_plan_keeps_label_windows_inside_data_and_apart_between_splits():
    label = LabelConfig(horizon_days=60)
    plan = plan_cutoffs(SamplingConfig(), label, AS_OF, pd.Timestamp("2025-01-01"))
    window = pd.Timedelta(days=60)
    test_cutoff = plan.loc[plan["split"] == "test", "cutoff"].max()
    val_cutoff = plan.loc[plan["split"] == "validation", "cutoff"].max()
    train_cutoffs = plan.loc[plan["split"] == "train", "cutoff"]
    assert test_cutoff == pd.Timestamp("2025-11-01")  # Dec 1 + 60 days runs past as_of
    assert test_cutoff + window <= AS_OF
    assert val_cutoff + window <= test_cutoff
    assert (train_cutoffs + window <= val_cutoff).all()
    assert train_cutoffs.min() >= pd.Timestamp("2025-01-01") + pd.Timedelta(days=90)
    assert plan["cutoff"].is_unique


def test_plan_fails_clearly_when_data_is_too_short():
    with pytest.raises(SamplingError, match=r"not enough cutoffs|no training cutoff"):
        plan_cutoffs(SamplingConfig(), LabelConfig(), AS_OF, pd.Timestamp("2025-08-01"))


def test_explicit_cutoffs_are_used_as_given():
    sampling = SamplingConfig(cutoffs=["2025-03-01", "2025-06-01", "2025-09-01", "2025-05-01"])
    plan = plan_cutoffs(sampling, LabelConfig(horizon_days=60), AS_OF, pd.Timestamp("2025-01-01"))
    assert plan.set_index("cutoff")["split"].to_dict() == {
        pd.Timestamp("2025-03-01"): "train",
        pd.Timestamp("2025-06-01"): "validation",
        pd.Timestamp("2025-09-01"): "test",
    }


def test_eligibility_needs_tenure_and_no_termination_on_or_before_cutoff():
    customers = _customers(
        [
            ("old", "2024-01-01", None, None),
            ("new", "2025-05-20", None, None),  # 12 days before the cutoff
            ("left_before", "2024-01-01", "2025-05-15", "voluntary"),
            ("left_on", "2024-01-01", "2025-06-01", "voluntary"),
            ("left_after", "2024-01-01", "2025-06-02", "voluntary"),
        ]
    )
    mask = eligible_customers(customers, pd.Timestamp("2025-06-01"), min_tenure_days=30)
    assert customers.loc[mask, "customer_id"].tolist() == ["old", "left_after"]


@pytest.fixture
def labelled_dataset(tmp_path: Path) -> Path:
    customers = _customers(
        [
            ("A", "2024-01-01", None, None),
            ("vol_in", "2024-01-01", "2025-11-20", "voluntary"),
            ("port_edge", "2024-01-01", "2025-12-31", "port_out"),  # exactly cutoff + 60 days
            ("nonpay", "2024-01-01", "2025-11-10", "non_payment"),
            ("other", "2024-01-01", "2025-11-12", "other"),
            ("late", "2024-01-01", "2026-01-05", "voluntary"),
            ("gone", "2024-01-01", "2025-10-15", "voluntary"),
        ]
    )
    return _write(tmp_path / "ds", customers, _calls(BASE_CALLS))


def test_termination_labels_count_only_the_configured_reasons(labelled_dataset: Path):
    sample = sample_customers(
        labelled_dataset, LabelConfig(), SamplingConfig(scheme="single_split"), seed=1
    )
    test = sample.split("test").set_index("customer_id")
    assert test["cutoff"].iloc[0] == pd.Timestamp("2025-11-01")
    assert test["label"].to_dict() == {
        "A": 0,
        "late": 0,
        "nonpay": 0,
        "other": 0,
        "port_edge": 1,
        "vol_in": 1,
    }
    assert bool(test.loc["nonpay", "involuntary"]) is True
    assert test.loc["other", "exit_reason"] == "other"
    assert "gone" not in test.index  # terminated before the cutoff


def test_customer_terminated_before_a_cutoff_never_appears_at_it(labelled_dataset: Path):
    sample = sample_customers(
        labelled_dataset, LabelConfig(), SamplingConfig(scheme="single_split"), seed=1
    )
    customers = pd.read_parquet(labelled_dataset / "customers.parquet").set_index("customer_id")
    terminated = sample.rows["customer_id"].map(customers["terminated_at"])
    assert not (terminated <= sample.rows["cutoff"]).any()


def test_gap_drops_customers_who_leave_before_retention_can_act(labelled_dataset: Path):
    sample = sample_customers(
        labelled_dataset,
        LabelConfig(gap_days=15, horizon_days=45),
        SamplingConfig(scheme="single_split"),
        seed=1,
    )
    test = sample.split("test").set_index("customer_id")
    assert "nonpay" not in test.index and "other" not in test.index  # left within 15 days
    assert test.loc["vol_in", "label"] == 1


def test_labels_change_only_with_rows_after_the_cutoff(tmp_path: Path):
    customers = _customers([("A", "2024-01-01", None, None), ("B", "2024-01-01", None, None)])
    calls = _calls(
        [
            *BASE_CALLS,
            ("A", "2025-10-20", "out"),
            ("B", "2025-10-21", "out"),
            ("A", "2025-11-10", "out"),
        ]
    )
    label = LabelConfig(kind="inactivity", horizon_days=30)
    sampling = SamplingConfig(
        cutoffs=["2025-05-01", "2025-09-01", "2025-11-01"], scheme="single_split"
    )

    def test_labels(calls_frame: pd.DataFrame) -> dict:
        dataset = _write(tmp_path / f"ds{len(calls_frame)}", customers, calls_frame)
        return (
            sample_customers(dataset, label, sampling, seed=1)
            .split("test")
            .set_index("customer_id")["label"]
            .to_dict()
        )

    assert test_labels(calls) == {"A": 0, "B": 1}
    extra_before = _calls([("B", "2025-10-25", "out"), ("B", "2025-10-31 23:59", "in")])
    assert test_labels(pd.concat([calls, extra_before])) == {"A": 0, "B": 1}
    extra_after = _calls([("B", "2025-11-20", "out")])
    assert test_labels(pd.concat([calls, extra_before, extra_after])) == {"A": 0, "B": 0}


def test_inactivity_label_counts_payments_as_activity(tmp_path: Path):
    customers = _customers([("A", "2024-01-01", None, None)])
    calls = _calls([*BASE_CALLS, ("A", "2025-10-20", "out")])
    payments = pd.DataFrame(
        {
            "payment_id": ["p1"],
            "customer_id": ["A"],
            "paid_at": pd.to_datetime(["2025-11-15"]),
            "amount": [10.0],
            "bill_id": [None],
        }
    )
    label = LabelConfig(kind="inactivity", horizon_days=30)
    sampling = SamplingConfig(
        cutoffs=["2025-05-01", "2025-09-01", "2025-11-01"], scheme="single_split"
    )
    silent = sample_customers(_write(tmp_path / "a", customers, calls), label, sampling, 1)
    paying = sample_customers(
        _write(tmp_path / "b", customers, calls, payments), label, sampling, 1
    )
    assert silent.split("test")["label"].tolist() == [1]
    assert paying.split("test")["label"].tolist() == [0]


def test_downsampling_keeps_positives_and_weights_negatives():
    rows = pd.DataFrame(
        {
            "split": ["train"] * 10_000 + ["test"] * 100,
            "label": np.r_[np.zeros(9_000), np.ones(1_000), np.zeros(100)].astype(int),
        }
    )
    sampled = downsample_negatives(rows, rate=0.25, seed=3)
    train = sampled[sampled["split"] == "train"]
    assert (train.loc[train["label"] == 1, "weight"] == 1).all()
    assert (train.loc[train["label"] == 0, "weight"] == 4).all()
    assert (train["label"] == 1).sum() == 1_000
    assert (sampled["split"] == "test").sum() == 100
    weighted_negatives = train.loc[train["label"] == 0, "weight"].sum()
    assert abs(weighted_negatives - 9_000) < 4 * np.sqrt(9_000 * 0.25 * 0.75) * 4


def test_summary_reports_churn_and_involuntary_churn_apart():
    rows = pd.DataFrame(
        {
            "cutoff": pd.to_datetime(["2025-01-01"] * 4),
            "split": "train",
            "label": [1, 0, 0, 0],
            "exit_reason": pd.array(["port_out", "non_payment", None, None], dtype="string"),
            "involuntary": [False, True, False, False],
            "weight": 1.0,
        }
    )
    summary = summarize_sample(rows).iloc[0]
    assert summary["eligible"] == 4 and summary["churners"] == 1
    assert summary["involuntary"] == 1 and summary["exits_port_out"] == 1
    assert summary["exits_non_payment"] == 1 and summary["exits_voluntary"] == 0
    assert summary["churn_rate"] == pytest.approx(0.25)
