"""Scoring is point-in-time: scores at a date are the same whether or not the later data exist."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from churnml.backtest import backtest_auc, score_outcomes, withhold_after
from churnml.config import compose_config
from churnml.io import dataset_as_of
from churnml.jobs import run_scoring

pytestmark = pytest.mark.slow


def _score(root: Path, dataset: Path, output: Path, *overrides: str) -> pd.DataFrame:
    cfg = compose_config(
        "score",
        [
            f"paths.root_dir={root}",
            f"data.path={dataset}",
            "data.name=tiny",  # the trained project's model: churnml_tiny
            f"scoring.output_dir={output}",
            *overrides,
        ],
    )
    return pd.read_parquet(run_scoring(cfg).scores_path)


def test_scores_ignore_everything_after_the_scoring_date(trained_project, tiny_dataset, tmp_path):
    as_of = dataset_as_of(tiny_dataset)
    date = (as_of - pd.Timedelta(days=75)).to_period("M").to_timestamp()
    withheld = withhold_after(tiny_dataset, tmp_path / "withheld", date)
    assert json.loads((withheld / "manifest.json").read_text())["as_of"] == date.isoformat()
    calls = pd.read_parquet(withheld / "calls.parquet", columns=["started_at"])
    assert calls["started_at"].max() < date

    full = _score(trained_project, tiny_dataset, tmp_path / "full", f"scoring.date={date.date()}")
    blind = _score(trained_project, withheld, tmp_path / "blind")
    pd.testing.assert_frame_equal(full, blind)

    outcomes = score_outcomes(full, tiny_dataset, horizon_days=60)
    assert outcomes["churned"].sum() > 0
    assert backtest_auc(outcomes) > 0.55
