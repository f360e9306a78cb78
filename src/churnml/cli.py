"""The `churnml` command: every job behind one entry point, with the exit codes schedulers read.

    churnml train [hydra overrides ...]        validate, sample, build features, train, register
    churnml score scoring.date=2025-11-01      batch scoring with the champion
    churnml simulate simulate=large            write a simulated dataset
    churnml validate data.path=/data/latest    check raw tables against the data contract
    churnml tune hydra.sweeper.n_trials=10     Optuna sweep (Hydra multirun), registers nothing
    churnml promote --version 7 --reason "..." make a registered version the champion by hand
    churnml lost scoring.date=2025-11-01       lost customers, early warning, win-back list
    churnml review                             the three-month review of retention campaigns
    churnml uplift                             train and register the uplift model

Every job takes Hydra overrides and Hydra's own flags (`--cfg job`, `--config-dir DIR`, `-m`).
The configs ship in the package (`churnml/conf`); a folder of your own configs goes on top with
`--config-dir DIR` or the CHURNML_CONFIG_DIR environment variable. Exit codes: `churnml.errors`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import hydra
from omegaconf import DictConfig

from churnml.config import register_configs, to_object
from churnml.errors import ExitCode, exit_on_known_errors

log = logging.getLogger("churnml")

CONFIG_PATH = "pkg://churnml.conf"
CONFIG_DIR_ENV = "CHURNML_CONFIG_DIR"

COMMANDS = {
    "train": "validate, sample, build features, train, explain, log and register",
    "score": "score every eligible customer with the champion model",
    "simulate": "write a simulated telecom dataset",
    "validate": "check a dataset's raw tables against the data contract",
    "tune": "hyper-parameter sweep (Optuna, Hydra multirun); registers nothing",
    "promote": "make a registered model version the champion, with a reason",
    "lost": "lost-customer table, early-warning report and win-back list",
    "review": "the three-month review of retention campaigns (HTML report, MLflow run)",
    "uplift": "train and register the uplift model from campaign history",
}


def _train_job(cfg: DictConfig) -> float:
    from churnml.jobs import run_training

    with exit_on_known_errors():
        result = run_training(to_object(cfg))
    print(f"\nDataset:              {result.dataset_name}")
    print(f"MLflow run:           {result.run_id}")
    if result.model_version is not None:
        print(f"Model:                {result.model_name} v{result.model_version}")
        print(f"Registry:             {result.decision}")
    if result.hazard_model_version is not None:
        print(f"Time-to-churn model:  {result.model_name}_hazard v{result.hazard_model_version}")
        print(f"Registry:             {result.hazard_decision}")
    shown = (
        "test_roc_auc",
        "test_roc_auc_std",
        "test_truth_roc_auc",
        "test_pr_auc",
        "test_top_decile_lift",
        "test_brier",
        "test_ece",
        "cv_roc_auc_mean",
        "hazard_test_concordance",
        "hazard_test_auc_90d",
        "hazard_test_truth_auc_90d",
        "hazard_test_ibs_skill",
    )
    for name in (n for n in shown if n in result.metrics):
        print(f"{name:22s}{result.metrics[name]:.4f}")
    if result.report_path is not None:
        print(f"Report:               {result.report_path}")
    # The sweeper's objective: the validation cutoff, never the test cutoff. (A very short
    # history's rolling folds may have no two-class validation rows: no objective then.)
    return result.metrics.get("val_roc_auc", float("nan"))


def _score_job(cfg: DictConfig) -> None:
    from churnml.jobs import run_scoring

    with exit_on_known_errors():
        result = run_scoring(to_object(cfg))
    print(f"\nScored {result.rows:,} customers with {result.model_name} v{result.model_version}")
    print(f"Scores:        {result.scores_path}")
    print(f"Contact list:  {result.contact_list_path}")
    print(f"Monitoring:    {result.monitoring_path}")
    for warning in result.warnings:
        print(f"WARNING: {warning}")


def _simulate_job(cfg: DictConfig) -> None:
    from churnml.jobs import run_simulation

    with exit_on_known_errors():
        path = run_simulation(cfg)
    print(f"\nDataset written to {path}")


def _validate_job(cfg: DictConfig) -> None:
    from churnml.jobs import run_validation

    with exit_on_known_errors():
        summary = run_validation(to_object(cfg))
    print(f"\n{summary}")


def _lost_job(cfg: DictConfig) -> None:
    from churnml.lost_job import run_lost

    with exit_on_known_errors():
        result = run_lost(to_object(cfg))
    print(f"\nLost customers: {result.rows:,} in {result.lost_path}")
    print(f"Report:         {result.report_path}")
    if result.winback_path is not None:
        print(f"Win-back list:  {result.winback_path}")
    for note in result.notes:
        print(f"NOTE: {note}")


def _review_job(cfg: DictConfig) -> None:
    from churnml.review import run_review

    with exit_on_known_errors():
        result = run_review(to_object(cfg))
    print()
    for sentence in result.sentences:
        print(sentence)
    if result.report_path is not None:
        print(f"\nReport:      {result.report_path}")
        print(f"MLflow run:  {result.run_id}")


def _uplift_job(cfg: DictConfig) -> None:
    from churnml.uplift import run_uplift

    with exit_on_known_errors():
        result = run_uplift(to_object(cfg))
    print(f"\n{result.message}")
    for name in sorted(result.metrics):
        print(f"{name:40s}{result.metrics[name]:.4f}")


JOBS: dict[str, tuple[str, Callable[[DictConfig], object]]] = {
    "train": ("train", _train_job),
    "tune": ("train", _train_job),
    "score": ("score", _score_job),
    "simulate": ("simulate", _simulate_job),
    "validate": ("validate", _validate_job),
    "lost": ("lost", _lost_job),
    "review": ("review", _review_job),
    "uplift": ("uplift", _uplift_job),
}


def _config_error(config_name: str, overrides: list[str], user_dir: str | None) -> str | None:
    """Why the config cannot be composed (a typo in an override, an unknown option), or None.

    Hydra reports such errors with exit 1, the code of a bug; a scheduler must see 2. Sweeps
    and Hydra's own flags are left to Hydra.
    """
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if any(o.startswith("-") for o in overrides):
        return None
    plain = [o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/"))]
    if user_dir:
        plain.append(f"hydra.searchpath=[file://{Path(user_dir).resolve()}]")
    try:
        with initialize_config_module("churnml.conf", version_base="1.3"):
            compose(config_name=config_name, overrides=plain)
    except (HydraException, OmegaConfBaseException) as error:
        return str(error).strip().splitlines()[0]
    return None


def _run_hydra_job(command: str, overrides: list[str]) -> int:
    config_name, job = JOBS[command]
    if command == "tune" and not any(o.startswith("hparams_search=") for o in overrides):
        overrides = ["hparams_search=lightgbm_optuna", *overrides]
    register_configs()
    user_dir = os.environ.get(CONFIG_DIR_ENV)
    if command != "tune":
        error = _config_error(config_name, overrides, user_dir)
        if error is not None:
            print(f"\nERROR (bad_input, exit 2): churnml {command}: {error}", file=sys.stderr)
            return int(ExitCode.BAD_INPUT)
    if user_dir and not any(o.startswith(("--config-dir", "-cd")) for o in overrides):
        overrides = [f"--config-dir={user_dir}", *overrides]
    entry = hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name=config_name)(job)
    saved_argv = sys.argv
    sys.argv = [f"churnml {command}", *overrides]
    try:
        entry()
    finally:
        sys.argv = saved_argv
    return int(ExitCode.OK)


def _promote(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="churnml promote",
        description="Make a registered model version the champion, recording why.",
    )
    parser.add_argument("--version", required=True, help="the model version to promote")
    parser.add_argument("--reason", required=True, help="why (kept as a tag on the version)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data.name=my_operator")
    args = parser.parse_args(argv)
    from churnml.config import compose_config
    from churnml.jobs import promote_by_hand

    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] %(message)s"
    )
    with exit_on_known_errors():
        cfg = compose_config("train", args.overrides)
        decision = promote_by_hand(cfg, args.version, args.reason)
    print(decision)
    return int(ExitCode.OK)


def _usage() -> str:
    lines = ["usage: churnml COMMAND [hydra overrides ...]", "", "commands:"]
    lines += [f"  {name:10s}{text}" for name, text in COMMANDS.items()]
    lines += ["", "churnml COMMAND --help shows the command's configuration and overrides."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return (or exit with) the README's exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return int(ExitCode.OK)
    command, rest = argv[0], argv[1:]
    if command == "promote":
        return _promote(rest)
    if command not in JOBS:
        print(f"churnml: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return int(ExitCode.BAD_INPUT)
    return _run_hydra_job(command, rest)


if __name__ == "__main__":
    sys.exit(main())
