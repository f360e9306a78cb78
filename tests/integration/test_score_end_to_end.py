"""Batch scoring end to end: contract columns, idempotence, atomic writes, lock, exit codes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from pipeline_runs import run_pipeline

from churnml.config import compose_config
from churnml.errors import NoEligibleCustomersError, RunLockedError
from churnml.features.reasons import reason_problems
from churnml.io import DatasetError, output_lock
from churnml.jobs import run_scoring, scoring_folder
from churnml.scoring import SCORE_COLUMNS
from churnml.tracking import NoChampionError

pytestmark = pytest.mark.slow


def _score_config(root: Path, dataset: Path, *overrides: str):
    return compose_config(
        "score",
        [
            f"paths.root_dir={root}",
            f"run_dir={root}/logs/score",
            f"data.path={dataset}",
            "data.name=tiny",
            *overrides,
        ],
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_scores_follow_the_contract(trained_project: Path, tiny_dataset: Path):
    result = run_scoring(_score_config(trained_project, tiny_dataset))
    scores = pd.read_parquet(result.scores_path)
    assert list(scores.columns[: len(SCORE_COLUMNS)]) == list(SCORE_COLUMNS)
    assert scores["customer_id"].is_unique and len(scores) == result.rows
    assert scores["churn_probability"].between(0, 1).all()
    assert set(scores["value_tier"]) <= {"A", "B", "C", "D"}
    assert scores["reason_1"].notna().mean() > 0.9
    assert (scores["revenue_at_risk"] >= 0).all()
    assert scores["priority_rank"].tolist() == list(range(1, len(scores) + 1))
    assert set(scores["risk_band"]) <= {f"R{d:02d}" for d in range(1, 11)}
    reasons = pd.concat([scores[f"reason_{k}"] for k in (1, 2, 3)]).dropna()
    problems = {text: reason_problems(text) for text in reasons.unique()}
    assert {t: p for t, p in problems.items() if p} == {}
    assert (scores["script"].str.len() > 0).all()
    # Actions agree with the facts: nobody whose contract ended is offered a renewal before it.
    ended = scores[["reason_1", "reason_2", "reason_3"]].apply(
        lambda column: column.str.contains("contract ended", na=False)
    )
    renewal = scores["action"].str.contains("before commitment end")
    assert not (ended.any(axis=1) & renewal).any()
    customers = pd.read_parquet(tiny_dataset / "customers.parquet")
    manifest = json.loads((tiny_dataset / "manifest.json").read_text())
    as_of = pd.Timestamp(manifest["as_of"])
    terminated = pd.to_datetime(customers["terminated_at"])
    active = customers[terminated.isna() | (terminated > as_of)]
    assert set(scores["customer_id"]) <= set(active["customer_id"])
    contacts = pd.read_csv(result.contact_list_path)
    assert (contacts["action"] != "no action").all() and (contacts["expected_profit"] > 0).all()
    # One order: the contact list is the head of priority_rank.
    assert contacts["priority"].tolist() == list(range(1, len(contacts) + 1))
    first = scores.set_index("priority_rank").loc[contacts["priority"], "customer_id"]
    assert first.tolist() == contacts["customer_id"].astype(str).tolist()
    assert (contacts["churn_probability"].round(2) == contacts["churn_probability"]).all()
    monitoring = json.loads(result.monitoring_path.read_text())
    assert "churn_probability" in monitoring["psi"]


def test_scoring_twice_gives_identical_files(trained_project: Path, tiny_dataset: Path):
    cfg = _score_config(trained_project, tiny_dataset, "scoring.date=2024-12-01")
    first = run_scoring(cfg)
    digest = _digest(first.scores_path)
    second = run_scoring(cfg)
    assert _digest(second.scores_path) == digest


def test_crash_while_writing_leaves_the_earlier_file(trained_project, tiny_dataset, monkeypatch):
    cfg = _score_config(trained_project, tiny_dataset, "scoring.date=2024-11-01")
    first = run_scoring(cfg)
    digest = _digest(first.scores_path)

    def crash(self, path, *args, **kwargs):
        Path(path).write_bytes(b"half a parquet file")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", crash)
    with pytest.raises(OSError, match="disk full"):
        run_scoring(cfg)
    assert _digest(first.scores_path) == digest
    assert not [p for p in first.scores_path.parent.parent.iterdir() if p.name.endswith(".tmp")]


def test_second_run_for_the_same_date_is_locked_out(trained_project, tiny_dataset):
    cfg = _score_config(trained_project, tiny_dataset, "scoring.date=2024-10-01")
    folder = scoring_folder(cfg, pd.Timestamp("2024-10-01"))
    with output_lock(folder), pytest.raises(RunLockedError):
        run_scoring(cfg)


def test_date_after_the_data_is_bad_input(trained_project, tiny_dataset):
    with pytest.raises(DatasetError, match="after the data's as_of"):
        run_scoring(_score_config(trained_project, tiny_dataset, "scoring.date=2030-01-01"))


def test_no_champion_exits_with_its_own_code(tiny_dataset: Path, tmp_path: Path):
    with pytest.raises(NoChampionError):
        run_scoring(_score_config(tmp_path, tiny_dataset))
    completed = run_pipeline(
        "score",
        [f"paths.root_dir={tmp_path}", f"data.path={tiny_dataset}", "validation.enabled=false"],
        cwd=tmp_path,
        timeout=300,
    )
    assert completed.returncode == 3, completed.stderr[-2000:]
    assert "no version with alias 'champion'" in completed.stderr


def test_no_eligible_customer_is_its_own_error(trained_project: Path, tiny_dataset: Path):
    with pytest.raises(NoEligibleCustomersError, match="no customer"):
        run_scoring(_score_config(trained_project, tiny_dataset, "scoring.date=1990-01-01"))
