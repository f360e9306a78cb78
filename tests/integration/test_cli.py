"""The installed `churnml` command: each failure reaches the scheduler as its README exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from churnml.config import compose_config
from churnml.errors import ExitCode
from churnml.jobs import scoring_folder
from churnml.scoring import scoring_lock
from churnml.tracking import setup_tracking

pytestmark = pytest.mark.slow

CHURNML = Path(sys.executable).with_name("churnml")


def churnml(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """The console script as cron or systemd runs it: no MLFLOW_TRACKING_URI from our shell."""
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run(
        [str(CHURNML), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        env={**environment, **(env or {})},
    )


def _score_args(root: Path, dataset: Path, *extra: str) -> list[str]:
    return [
        "score",
        f"paths.root_dir={root}",
        f"data.path={dataset}",
        "data.name=tiny",
        "validation.enabled=false",
        *extra,
    ]


def test_help_lists_every_command(tmp_path):
    done = churnml("--help", cwd=tmp_path)
    assert done.returncode == 0
    for command in ("train", "score", "simulate", "validate", "tune", "promote", "lost"):
        assert command in done.stdout
    assert churnml("nonsense", cwd=tmp_path).returncode == ExitCode.BAD_INPUT


def test_bad_input_exits_2(tmp_path):
    done = churnml(*_score_args(tmp_path, tmp_path / "no_such_dataset"), cwd=tmp_path)
    assert done.returncode == ExitCode.BAD_INPUT, done.stderr[-2000:]
    assert "no_such_dataset" in done.stderr


def test_no_champion_exits_3(tiny_dataset, tmp_path):
    done = churnml(*_score_args(tmp_path, tiny_dataset), cwd=tmp_path)
    assert done.returncode == ExitCode.NO_CHAMPION, done.stderr[-2000:]
    assert "churnml_tiny" in done.stderr


def test_no_eligible_customers_exits_4(trained_project, tiny_dataset):
    args = _score_args(trained_project, tiny_dataset, "scoring.date=1990-01-01")
    done = churnml(*args, cwd=trained_project)
    assert done.returncode == ExitCode.NO_ELIGIBLE, done.stderr[-2000:]


def test_locked_date_exits_5(trained_project, tiny_dataset):
    args = _score_args(trained_project, tiny_dataset, "scoring.date=2024-09-01")
    cfg = compose_config("score", args[1:])
    with scoring_lock(scoring_folder(cfg, pd.Timestamp("2024-09-01"))):
        done = churnml(*args, cwd=trained_project)
    assert done.returncode == ExitCode.LOCKED, done.stderr[-2000:]


def test_scores_failing_their_checks_exit_6_and_publish_nothing(trained_project, tiny_dataset):
    # A revenue column that can be negative gives negative revenue at risk: refused.
    args = _score_args(
        trained_project,
        tiny_dataset,
        "scoring.date=2024-08-01",
        "scoring.revenue_feature=days_to_commitment_end",
    )
    done = churnml(*args, cwd=trained_project)
    assert done.returncode == ExitCode.BAD_OUTPUT, done.stderr[-2000:]
    cfg = compose_config("score", args[1:])
    folder = scoring_folder(cfg, pd.Timestamp("2024-08-01"))
    assert not (folder / "scores.parquet").exists()
    # The failed run is an MLflow run all the same: FAILED, with its exit code.
    setup_tracking(cfg.tracking)
    runs = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("churnml").experiment_id],
        filter_string="tags.job = 'score' and tags.exit_code = '6'",
    )
    assert runs and runs[0].info.status == "FAILED"
    assert "ScoresInvalid" in runs[0].data.tags["error"]


def test_short_history_is_refused_unless_allowed(trained_project, tiny_dataset):
    start = pd.read_parquet(tiny_dataset / "calls.parquet", columns=["started_at"])["started_at"]
    early = (pd.to_datetime(start).min() + pd.Timedelta(days=40)).date().isoformat()
    args = _score_args(trained_project, tiny_dataset, f"scoring.date={early}")
    done = churnml(*args, cwd=trained_project)
    assert done.returncode == ExitCode.BAD_INPUT, done.stderr[-2000:]
    assert "days of event history" in done.stderr and "90 days back" in done.stderr
    allowed = churnml(*args, "scoring.allow_short_history=true", cwd=trained_project)
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    assert "WARNING" in allowed.stdout and "days of event history" in allowed.stdout


def test_promote_by_hand_records_the_reason(trained_project):
    base = [f"paths.root_dir={trained_project}", "data.name=tiny"]
    missing = churnml("promote", "--version", "99", "--reason", "test", *base, cwd=trained_project)
    assert missing.returncode == ExitCode.NO_CHAMPION, missing.stderr[-2000:]
    done = churnml(
        "promote",
        "--version",
        "1",
        "--reason",
        "restore after a bad week",
        *base,
        cwd=trained_project,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    cfg = compose_config("train", base)
    setup_tracking(cfg.tracking)
    version = MlflowClient().get_model_version_by_alias("churnml_tiny", "champion")
    assert str(version.version) == "1"
    assert version.tags["promotion_reason"] == "restore after a bad week"
    assert version.tags["promoted"] == "by hand"


def test_a_typo_in_an_override_is_bad_input(tmp_path):
    done = churnml("train", "model.nonsense=3", cwd=tmp_path)
    assert done.returncode == ExitCode.BAD_INPUT
    assert "Could not override 'model.nonsense'" in done.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_a_user_config_folder_goes_on_top_of_the_shipped_configs(tmp_path):
    (tmp_path / "conf" / "data").mkdir(parents=True)
    (tmp_path / "conf" / "data" / "my_operator.yaml").write_text(
        f"name: my_operator\nkind: events\npath: {tmp_path / 'nowhere'}\n"
    )
    done = churnml(
        "validate",
        "data=my_operator",
        cwd=tmp_path,
        env={"CHURNML_CONFIG_DIR": str(tmp_path / "conf")},
    )
    # The dataset config was found (no composition error); its folder does not exist.
    assert done.returncode == ExitCode.BAD_INPUT
    assert "nowhere" in done.stderr and "does not exist" in done.stderr
