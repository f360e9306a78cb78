"""`churnml lost` end to end on the tiny simulated operator with its trained champion: the
table in its folder, every ended subscription once, logged to MLflow, and a report that
renders in a real browser, offline, with no console errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from churnml.config import compose_config
from churnml.io import DatasetError
from churnml.jobs import run_scoring, scoring_folder
from churnml.lost_job import lost_folder, run_lost

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


STORED_DATE = "2024-10-15"  # a nightly score file the table must use where it applies


def _config(root: Path, dataset: Path, *overrides: str):
    return compose_config(
        "lost",
        [
            f"paths.root_dir={root}",
            f"run_dir={root}/logs/lost",
            f"data.path={dataset}",
            "data.name=tiny",
            # 12 months of data: a 2-month return window leaves room to train and test.
            "winback.horizon_months=2",
            "winback.test_cutoffs=2",
            "winback.min_returns=3",
            *overrides,
        ],
    )


@pytest.fixture(scope="module")
def lost_run(trained_project: Path, tiny_dataset: Path):
    score_cfg = compose_config(
        "score",
        [
            f"paths.root_dir={trained_project}",
            f"run_dir={trained_project}/logs/score_lost",
            f"data.path={tiny_dataset}",
            "data.name=tiny",
            "validation.enabled=false",
            f"scoring.date={STORED_DATE}",
        ],
    )
    run_scoring(score_cfg)
    cfg = _config(trained_project, tiny_dataset)
    return cfg, run_lost(cfg)


def test_every_ended_subscription_is_in_the_table_once(lost_run, tiny_dataset: Path):
    cfg, result = lost_run
    assert result.folder == lost_folder(cfg, pd.Timestamp("2025-01-01"))
    assert result.folder.parent.name == "dataset=tiny"
    lost = pd.read_parquet(result.lost_path)
    assert lost["customer_id"].is_unique
    customers = pd.read_parquet(tiny_dataset / "customers.parquet")
    ended = customers[customers["terminated_at"].notna()]
    terminated = lost[lost["exit_type"] != "silence"]
    assert set(terminated["customer_id"]) == set(ended["customer_id"])
    reasons = ended.set_index("customer_id")["termination_reason"]
    types = terminated.set_index("customer_id")["exit_type"]
    assert (types[reasons == "port_out"] == "port-out").all()
    assert (types[reasons == "non_payment"] == "non-payment").all()
    # The destination of every port-out is the operator of its port-out request.
    transfers = pd.read_parquet(tiny_dataset / "transfers.parquet")
    requests = transfers[transfers["kind"] == "port_out_request"]
    ports = terminated[terminated["exit_type"] == "port-out"].dropna(
        subset=["destination_operator"]
    )
    assert len(ports) > 0
    for row in ports.itertuples():
        mine = requests[requests["customer_id"] == row.customer_id]
        assert row.destination_operator in set(mine["operator"])
    # Scores before the exit: stored files where they cover it, the champion elsewhere; a
    # customer the date did not score (too new) has none.
    scored = lost["score_source"].notna()
    assert scored.mean() > 0.5 and set(lost.loc[scored, "score_source"]) <= {"champion", "stored"}
    assert lost.loc[scored, "main_cause"].notna().all()
    returned = lost["returned_customer_id"].dropna()
    assert returned.isin(customers["customer_id"]).all() and len(returned) > 0


def test_early_warning_agrees_with_the_stored_scores(lost_run):
    """Where a stored score file covers a lookback, the band is that file's, read here apart."""
    cfg, result = lost_run
    lost = pd.read_parquet(result.lost_path)
    used = 0
    for folder in scoring_folder(cfg, pd.Timestamp(STORED_DATE)).parent.glob("scoring_date=*"):
        day = pd.Timestamp(folder.name.split("=")[1])
        bands = pd.read_parquet(folder / "scores.parquet").set_index("customer_id")["risk_band"]
        for days in (30, 60, 90):
            rows = lost[lost[f"score_date_{days}d_before"] == day]
            expected = rows["customer_id"].map(bands)
            got = rows[f"risk_band_{days}d_before"]
            assert (got.fillna("none") == expected.fillna("none")).all()
            # The date is the latest on or before exit - days, at most 31 days older.
            target = rows["exit_date"] - pd.Timedelta(days=days)
            assert ((target >= day) & (target - day <= pd.Timedelta(days=31))).all()
            used += len(rows)
    assert used > 0
    by_month = pd.read_csv(result.folder / "early_warning_by_month.csv")
    for days in (30, 60, 90):
        judged = lost[f"score_date_{days}d_before"].notna()
        flagged = judged & (lost[f"risk_band_{days}d_before"] == "R01")
        assert by_month[f"judged_{days}d"].sum() == judged.sum()
        assert by_month[f"flagged_{days}d"].sum() == flagged.sum()


def test_a_date_after_the_data_is_bad_input(trained_project: Path, tiny_dataset: Path):
    with pytest.raises(DatasetError, match="after the data's as_of"):
        run_lost(_config(trained_project, tiny_dataset, "scoring.date=2030-01-01"))


def test_the_run_is_logged_to_mlflow(lost_run):
    _, result = lost_run
    run = mlflow.get_run(result.run_id)
    assert run.data.tags["job"] == "lost"
    assert run.data.metrics["lost_customers"] == result.rows
    assert "share_flagged_30d" in run.data.metrics
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(result.run_id, "lost")}
    assert "lost/lost_customers.parquet" in artifacts
    assert "lost/early_warning.html" in artifacts


@pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not found (apt-get install chromium)"
)
def test_report_renders_offline_without_console_errors(lost_run):
    playwright = pytest.importorskip("playwright.sync_api")
    _, result = lost_run
    problems: list[str] = []
    requests: list[str] = []
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("request", lambda request: requests.append(request.url))
        page.goto(result.report_path.as_uri(), wait_until="load")
        images = page.evaluate(
            "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
        )
        headings = page.evaluate(
            "Array.from(document.querySelectorAll('h2')).map(h => h.innerText)"
        )
        text = page.evaluate("document.body.innerText")
        browser.close()
    assert problems == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert images and all(ok and w > 100 and h > 100 for ok, w, h in images)
    assert {"Did we see them coming?", "What was lost", "Win-back"} <= set(headings)
    assert "How to read this report" in text and "top risk decile" in text
    assert "Out-of-time ROC AUC" in text or "Win-back list skipped" in text


def test_the_command_exits_2_on_a_missing_dataset(tmp_path: Path):
    from pipeline_runs import run_pipeline

    done = run_pipeline(
        "lost", [f"paths.root_dir={tmp_path}", f"data.path={tmp_path / 'nowhere'}"], tmp_path, 300
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "nowhere" in done.stderr
