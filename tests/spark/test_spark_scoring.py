"""Scoring on Spark against DuckDB: the same scores (within 1e-9), reasons, bands, tiers,
actions and priorities; written partitioned by scoring date, checked before publishing,
identical on re-run, and a refused run leaves the previous folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnml.config import compose_config
from churnml.jobs import run_scoring
from churnml.validation import ScoresInvalid

pytestmark = pytest.mark.slow

TEXT = [
    "customer_id",
    "risk_band",
    "value_tier",
    "reason_1",
    "reason_2",
    "reason_3",
    "main_cause",
    "reason_method",
    "action",
    "script",
    "model_version",
]
NUMBERS = ["churn_probability", "revenue_at_risk", "monthly_revenue", "expected_profit"]


def _config(root: Path, dataset: Path, out: Path, engine: str):
    """A score config; with engine=spark the job uses the active session (the fixture's)."""
    overrides = [
        f"paths.root_dir={root}",
        f"run_dir={root}/logs/score-{engine}",
        f"data.path={dataset}",
        "data.name=sim2k",
        f"scoring.output_dir={out}",
        f"scoring.engine={engine}",
        "scoring.exact_reasons_rows=50",
    ]
    return compose_config("score", overrides)


def _text(frame: pd.DataFrame, column: str) -> list:
    return [None if pd.isna(v) else str(v) for v in frame[column]]


def test_spark_scores_equal_duckdb_scores(spark, spark_training, sim_2k: Path, tmp_path: Path):
    """The champion (trained on Spark features) scores the simulation on both engines."""
    root = spark_training.root
    duck = run_scoring(_config(root, sim_2k, tmp_path / "duck", "duckdb"))
    on_spark = run_scoring(_config(root, sim_2k, tmp_path / "spark", "spark"))
    a = pd.read_parquet(duck.scores_path)
    b = pd.read_parquet(on_spark.scores_path)
    assert on_spark.scores_path.parent.name.startswith("scoring_date=")
    assert on_spark.scores_path.is_dir()  # Spark's part files
    assert list(b.columns) == list(a.columns)
    assert len(a) == len(b) == on_spark.rows > 500
    a, b = a.sort_values("customer_id"), b.sort_values("customer_id")
    for column in NUMBERS:
        x, y = a[column].to_numpy(float), b[column].to_numpy(float)
        assert np.array_equal(np.isnan(x), np.isnan(y)), column
        assert np.nanmax(np.abs(x - y)) <= 1e-9, column
    for column in TEXT:
        assert _text(a, column) == _text(b, column), column
    assert a["priority_rank"].tolist() == b["priority_rank"].tolist()
    assert (b["reason_method"] == "shap").sum() >= 50  # the top of the call lists: exact
    for name in ("contact_list.csv", "monitoring.json"):
        assert (on_spark.scores_path.parent / name).is_file()
    duck_contacts = pd.read_csv(duck.contact_list_path)
    spark_contacts = pd.read_csv(on_spark.contact_list_path)
    pd.testing.assert_frame_equal(duck_contacts, spark_contacts)
    assert on_spark.warnings == duck.warnings

    # A re-run gives the same scores.
    again = run_scoring(_config(root, sim_2k, tmp_path / "spark", "spark"))
    pd.testing.assert_frame_equal(
        pd.read_parquet(again.scores_path).drop(columns="run_id"),
        pd.read_parquet(on_spark.scores_path).drop(columns="run_id"),
    )


def _scores(probability: list[float]) -> pd.DataFrame:
    n = len(probability)
    return pd.DataFrame(
        {
            "scoring_date": pd.Timestamp("2025-01-01"),
            "customer_id": [f"C{i}" for i in range(n)],
            "churn_probability": probability,
            "risk_band": "R01",
            "value_tier": "A",
            "revenue_at_risk": 1.0,
            "reason_1": "x",
            "reason_2": None,
            "reason_3": None,
            "action": "monitor",
            "model_name": "m",
            "model_version": "1",
            "run_id": "r",
            "priority_rank": np.arange(1, n + 1),
        }
    )


def test_refused_scores_leave_the_previous_folder(spark, tmp_path: Path) -> None:
    """Scores that break the contract are refused after the staging write: the date's earlier
    folder stays as it was and no staging folder is left."""
    from churnml.spark.scoring import publish_scores_spark

    folder = tmp_path / "scores" / "scoring_date=2025-01-01"
    expected = spark.createDataFrame(pd.DataFrame({"customer_id": ["C0", "C1"]}))

    def files(written):
        return {"monitoring.json": f'{{"rows": {written.count()}}}'}

    good = spark.createDataFrame(_scores([0.2, 0.7]))
    publish_scores_spark(spark, str(folder), good, expected, files)
    before = pd.read_parquet(folder / "scores.parquet")
    assert (folder / "monitoring.json").read_text() == '{"rows": 2}'
    bad = spark.createDataFrame(_scores([0.2, 1.5]))
    with pytest.raises(ScoresInvalid, match="churn_probability"):
        publish_scores_spark(spark, str(folder), bad, expected, files)
    pd.testing.assert_frame_equal(pd.read_parquet(folder / "scores.parquet"), before)
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]


def test_spark_scoring_names_the_registered_models_it_does_not_apply(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """A time-to-churn or uplift champion registered beside the churn model is not applied on
    Spark (docs/spark.md): scoring says so for each, and says nothing when neither exists."""
    from churnml import tracking
    from churnml.spark.jobs import models_not_applied

    cfg = compose_config("score", [f"paths.root_dir={tmp_path}", "data.name=shop"])
    registered: set[str] = set()
    monkeypatch.setattr(
        tracking,
        "alias_version",
        lambda named, alias: "1" if named.registered_model_name in registered else None,
    )
    assert models_not_applied(cfg) == []
    registered |= {"churnml_shop_hazard", "churnml_shop_uplift"}
    hazard, uplift = models_not_applied(cfg)
    assert hazard.startswith("churnml_shop_hazard@champion is registered but Spark scoring")
    assert uplift.startswith("churnml_shop_uplift@champion is registered but Spark scoring")
    cfg.hazard.enabled = False  # the DuckDB path would not apply it either
    assert len(models_not_applied(cfg)) == 1
