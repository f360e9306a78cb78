"""`model=auto` on the public snapshot datasets, before (fixed settings) and after.

For each dataset: `churnml train data=<name>` with the settings it used before `model=auto`
(`model=lightgbm_small` for IBM Telco, `model=lightgbm` for BigML) and with `model=auto` (the
default now); and, as the bar to reach, a tuned LightGBM's stratified 5-fold CV AUC on the
same training file (a longer seeded Optuna search, `--reference-budget` seconds, same
protocol). Prints a Markdown table for benchmarks/RESULTS.md.

    python benchmarks/bench_auto.py [--reference-budget 300] [--datasets ibm_telco bigml_churn]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import mlflow
import pandas as pd

from churnml.config import compose_config
from churnml.jobs import run_training
from churnml.snapshot import choose_model, read_snapshot

ROOT = Path(__file__).resolve().parents[1]
BEFORE = {"ibm_telco": "lightgbm_small", "bigml_churn": "lightgbm"}


def _train(dataset: str, model: str, root: Path) -> tuple[dict[str, float], float, str]:
    shipped = compose_config("train", [f"data={dataset}", f"paths.root_dir={ROOT}"]).data
    cfg = compose_config(
        "train",
        [
            f"data={dataset}",
            f"model={model}",
            f"paths.root_dir={root}",
            f"data.path={shipped.path}",
            *([f"data.test_path={shipped.test_path}"] if shipped.test_path else []),
            "explain.enabled=false",
            "tracking.register=false",
        ],
    )
    started = time.perf_counter()
    result = run_training(cfg)
    tags = mlflow.MlflowClient().get_run(result.run_id).data.tags
    return result.metrics, time.perf_counter() - started, tags.get("model_choice", "")


def _reference(dataset: str, budget: float) -> tuple[float, int, float]:
    cfg = compose_config("train", [f"data={dataset}", f"paths.root_dir={ROOT}"])
    data = read_snapshot(cfg.data.path, cfg.data)
    model = replace(cfg.model, candidates={}, search_budget_s=budget, search_max_trials=10_000)
    started = time.perf_counter()
    choice = choose_model(data.frame, data.feature_columns, model, cfg.seed)
    return float(choice.table["cv_roc_auc"].max()), choice.trials, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reference-budget", type=float, default=300.0)
    parser.add_argument("--datasets", nargs="+", default=["ibm_telco", "bigml_churn"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    rows = []
    root = Path(tempfile.mkdtemp(prefix="bench_auto_"))  # one MLflow store for every run
    for dataset in args.datasets:
        reference, trials, reference_s = _reference(dataset, args.reference_budget)
        for label, model in (("before", BEFORE[dataset]), ("model=auto", "auto")):
            metrics, seconds, choice = _train(dataset, model, root)
            rows.append(
                {
                    "dataset": dataset,
                    "model": f"{label} ({model})",
                    "test_roc_auc": metrics["test_roc_auc"],
                    "cv": (
                        f"{metrics['cv_roc_auc_mean']:.3f} +- {metrics['cv_roc_auc_std']:.3f}"
                        if "cv_roc_auc_mean" in metrics
                        else "-"
                    ),
                    "auto_cv": metrics.get("auto_cv_roc_auc", float("nan")),
                    "reference": reference,
                    "reference_trials": trials,
                    "reference_s": reference_s,
                    "train_s": seconds,
                    "choice": choice,
                }
            )
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print(f"\n## model=auto on the public datasets ({pd.Timestamp.now():%Y-%m-%d %H:%M})\n")
    print(
        "| data | model | test ROC AUC | repeated CV AUC | chosen settings' CV AUC "
        "(training rows) | tuned LightGBM 5-fold CV AUC (same file) | train wall |\n"
        "|---|---|---|---|---|---|---|"
    )
    for row in table.itertuples():
        print(
            f"| {row.dataset} | {row.model} | {row.test_roc_auc:.3f} | {row.cv} | "
            f"{row.auto_cv:.3f} | {row.reference:.3f} ({row.reference_trials} trials, "
            f"{row.reference_s:.0f} s) | {row.train_s:.0f} s |"
        )
    for row in table.itertuples():
        if row.choice:
            print(f"\n- {row.dataset}: {row.choice}")


if __name__ == "__main__":
    main()
