"""The training job end to end on tiny simulated data, and its refusal of bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient
from tiny_dataset import BROKEN_RULES, write_tiny_dataset

from churnml.config import compose_config
from churnml.jobs import run_training
from churnml.tracking import (
    latest_training_run,
    load_registered_model,
    run_summary,
    setup_tracking,
)
from churnml.validation import ContractViolation

pytestmark = pytest.mark.slow

METRICS = ("roc_auc", "pr_auc", "top_decile_lift", "lift_at_5pct", "brier", "ece")


def test_training_logs_registers_and_reports(tiny_dataset: Path, make_train_config, tmp_path):
    cfg = make_train_config(tiny_dataset)
    result = run_training(cfg)

    run = MlflowClient().get_run(result.run_id)
    for split in ("val", "test"):
        for name in METRICS:
            assert f"{split}_{name}" in run.data.metrics
    assert 0.5 < run.data.metrics["test_roc_auc"] <= 1.0
    assert run.data.params["model.name"] == "lightgbm"
    assert "dataset_fingerprint" in run.data.tags

    artifacts = {a.path for a in MlflowClient().list_artifacts(result.run_id, "plots")}
    assert {"plots/roc.png", "plots/reliability.png", "plots/gain_lift.png"} <= artifacts

    _model, version, run_id = load_registered_model(cfg.tracking)  # the champion alias
    assert (version, run_id) == (result.model_version, result.run_id)
    assert result.report_path.exists() and result.report_path.is_relative_to(tmp_path)
    assert "<img" in result.report_path.read_text()


def test_second_run_is_challenger_and_promoted_only_when_better(
    tiny_dataset: Path, make_train_config
):
    # The single split scores both models honestly on its test cutoff (rolling: see
    # test_rolling_training.py).
    first = run_training(make_train_config(tiny_dataset, "sampling.scheme=single_split"))
    second = run_training(
        make_train_config(tiny_dataset, "model=logreg", "sampling.scheme=single_split")
    )
    client = MlflowClient()
    challenger = client.get_model_version_by_alias("churnml_test", "challenger")
    champion = client.get_model_version_by_alias("churnml_test", "champion")
    assert str(challenger.version) == second.model_version
    better = second.metrics["test_roc_auc"] > first.metrics["test_roc_auc"]
    assert str(champion.version) == (second.model_version if better else first.model_version)
    assert second.promoted == better


# tests/test_validation.py proves the validator finds every rule in Parquet and CSV; here one
# rule of each kind shows that the training job stops on it before writing anything.
ONE_RULE_PER_KIND: dict[str, object] = {}
for _rule in BROKEN_RULES:
    ONE_RULE_PER_KIND.setdefault(_rule.rule, _rule)


@pytest.mark.parametrize("rule", list(ONE_RULE_PER_KIND.values()), ids=lambda r: r.id)
def test_broken_contract_rule_stops_before_anything_is_written(
    rule, make_train_config, tmp_path: Path
):
    dataset = write_tiny_dataset(tmp_path / "raw" / "broken")
    rule.mutate(dataset)
    root = tmp_path / "project"
    root.mkdir()
    cfg = make_train_config(dataset, root=root)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    with pytest.raises(ContractViolation) as caught:
        run_training(cfg)
    message = str(caught.value)
    assert f"{rule.table}.{rule.column}" in message and f"{rule.n_rows} rows" in message
    failures = [(f.table, f.column, f.rule, f.n_rows) for f in caught.value.report.failures]
    assert failures == [(rule.table, rule.column, rule.rule, rule.n_rows)]
    written = sorted(p.relative_to(root) for p in root.rglob("*"))
    # Only the run's own log folder (validation Data Docs) may have appeared.
    assert all(p.parts[0] == "logs" for p in set(written) - set(before))
    assert not (root / "mlflow.db").exists()


def test_bad_dataset_folder_leaves_earlier_model_untouched(
    tiny_dataset, make_train_config, tmp_path: Path
):
    good = run_training(make_train_config(tiny_dataset))
    broken = tmp_path / "broken"
    shutil.copytree(tiny_dataset, broken)
    (broken / "customers.parquet").unlink()
    with pytest.raises(Exception, match="customers"):
        run_training(make_train_config(broken))
    client = MlflowClient()
    champion = client.get_model_version_by_alias("churnml_test", "champion")
    assert str(champion.version) == good.model_version


def test_same_config_and_seed_give_the_same_metrics(trained_project, tiny_dataset, tmp_path):
    overrides = [f"data.path={tiny_dataset}", "data.name=tiny", "explain.max_rows=1000"]
    again = run_training(compose_config("train", [f"paths.root_dir={tmp_path}", *overrides]))
    first_cfg = compose_config("train", [f"paths.root_dir={trained_project}", *overrides])
    setup_tracking(first_cfg.tracking)
    first = run_summary(latest_training_run())["metrics"]
    for name, value in again.metrics.items():
        assert first[name] == pytest.approx(value, abs=1e-12), name
