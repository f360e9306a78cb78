"""Benchmark training, per-customer reasons and end-to-end batch scoring at 1M customers.

Targets (2 cores): training on 1M (customer, cutoff) rows x the full feature set <= 5 min;
reasons for 1M customers <= 2 min; scoring 1M customers end to end (features, predict,
reasons, write) <= 5 min and <= 8 GB. Each stage runs in its own child process so its peak RSS
is its own. Reasons use path attributions, as scoring does; exact TreeSHAP runs on a sample
for its cost and for how often the two name the same main cause.

    python benchmarks/bench_model.py [--dataset data/raw/telco_sim_large]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("bench_model")
EXACT_SAMPLE_ROWS = 20_000


def _config(name: str, root: Path, dataset: Path, *overrides: str):
    from churnml.config import compose_config

    return compose_config(
        name,
        [
            f"paths.root_dir={root}",
            f"run_dir={root}/logs/{name}",
            f"data.path={dataset}",
            "data.name=bench",
            *overrides,
        ],
    )


def stage_train(dataset: Path, root: Path) -> dict:
    """Features at one cutoff for every customer, termination label, LightGBM + calibration."""
    import numpy as np

    from churnml import explain, tracking
    from churnml.features import build_features
    from churnml.io import dataset_as_of, read_table
    from churnml.sampling import eligible_customers
    from churnml.training import train_model

    cfg = _config("train", root, dataset, "model=lightgbm")  # auto resolves to it on events
    as_of = dataset_as_of(dataset)
    cutoff = (as_of - pd.Timedelta(days=cfg.label.horizon_days)).normalize()
    customers = read_table(dataset, "customers")
    eligible = customers[eligible_customers(customers, cutoff, 0)]
    spine = pd.DataFrame(
        {"customer_id": eligible["customer_id"].astype(str).to_numpy(), "cutoff": cutoff}
    )
    spine["cutoff"] = spine["cutoff"].astype("datetime64[us]")
    started = time.perf_counter()
    features = build_features(dataset, spine, cfg.features)
    feature_s = time.perf_counter() - started
    terminated = pd.to_datetime(eligible["terminated_at"]).to_numpy()
    reason = eligible["termination_reason"].astype(object).to_numpy()
    window_end = cutoff + pd.Timedelta(days=cfg.label.horizon_days)
    churned = (
        (terminated > cutoff)
        & (terminated <= window_end)
        & np.isin(reason, ["voluntary", "port_out"])
    )
    frame = features.assign(label=churned.astype("int8"), weight=1.0)
    columns = [c for c in features.columns if c not in ("customer_id", "cutoff")]
    bucket = pd.util.hash_array(frame["customer_id"].to_numpy()) % 10
    train, validation = frame[bucket < 9], frame[bucket == 9]
    started = time.perf_counter()
    model = train_model(train, validation, columns, cfg.model, cfg.seed)
    train_s = time.perf_counter() - started
    model.settings = {
        "features": asdict(cfg.features),
        "label": asdict(cfg.label),
        "min_tenure_days": 30,
        "data_kind": "events",
    }
    model.reference = (
        validation[columns]
        .head(5000)
        .assign(probability=model.predict_proba(validation.head(5000)))
    )
    log.warning(
        "features %.0f s, training %.0f s (best iteration %d)",
        feature_s,
        train_s,
        model.estimator.best_iteration,
    )
    started = time.perf_counter()
    path = explain.contributions(model, frame, "path")
    path_s = time.perf_counter() - started
    started = time.perf_counter()
    reasons = explain.customer_reasons(path)
    reasons_s = time.perf_counter() - started
    # Exact TreeSHAP on a sample: its time, scaled to all rows, and how often it agrees.
    sample = frame.sample(n=min(EXACT_SAMPLE_ROWS, len(frame)), random_state=0)
    started = time.perf_counter()
    exact = explain.customer_reasons(explain.contributions(model, sample, "treeshap"))
    exact_s = (time.perf_counter() - started) * len(frame) / len(sample)
    approximate = reasons.loc[sample.index]
    risk = model.predict_proba(sample)
    riskiest = risk >= np.quantile(risk, 0.9)
    same_cause = (approximate["main_cause"] == exact["main_cause"]).to_numpy()
    log.warning(
        "path attributions %.0f s, reasons %.0f s; exact TreeSHAP %.0f s (scaled)",
        path_s,
        reasons_s,
        exact_s,
    )
    with tracking.mlflow_run(cfg.tracking, "bench-train"):
        version = tracking.log_model(model, validation.head(5), cfg.tracking.registered_model_name)
        tracking.set_alias(cfg.tracking, cfg.tracking.champion_alias, version)
    return {
        "rows": len(frame),
        "train_rows": len(train),
        "features": len(columns),
        "churn_rate": float(frame["label"].mean()),
        "feature_s": feature_s,
        "train_s": train_s,
        "best_iteration": int(model.estimator.best_iteration),
        "path_s": path_s,
        "reasons_s": reasons_s,
        "exact_s": exact_s,
        "sample_rows": len(sample),
        "same_main_cause": float(same_cause.mean()),
        "same_main_cause_top_decile": float(same_cause[riskiest].mean()),
        "same_reason_1": float((approximate["reason_1"] == exact["reason_1"]).mean()),
    }


def stage_score(dataset: Path, root: Path) -> dict:
    """The scoring job as scheduled, input validation included."""
    import mlflow

    from churnml.jobs import run_scoring

    cfg = _config("score", root, dataset)
    started = time.perf_counter()
    result = run_scoring(cfg)
    score_s = time.perf_counter() - started
    metrics = mlflow.get_run(result.run_id).data.metrics
    stages = {k: v for k, v in metrics.items() if k.startswith("time_")}
    return {"rows": result.rows, "score_s": score_s, "stages": stages}


def _child(stage: str, dataset: Path, root: Path) -> dict:
    output = subprocess.run(
        [
            sys.executable,
            __file__,
            "--stage",
            stage,
            "--dataset",
            str(dataset),
            "--root",
            str(root),
        ],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", type=Path, default=ROOT / "data/raw/telco_sim_large")
    parser.add_argument("--stage", choices=["train", "score"])
    parser.add_argument("--root", type=Path)
    parser.add_argument(
        "--no-scoring", action="store_true", help="skip scoring every customer end to end"
    )
    args = parser.parse_args()
    if args.stage:
        logging.basicConfig(level=logging.WARNING)
        result = (
            stage_train(args.dataset, args.root)
            if args.stage == "train"
            else stage_score(args.dataset, args.root)
        )
        result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        print(json.dumps(result))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not (args.dataset / "manifest.json").exists():
        sys.exit(f"{args.dataset} missing: run `make simulate ARGS=simulate=large` first")
    with tempfile.TemporaryDirectory() as tmp:
        train = _child("train", args.dataset, Path(tmp))
        log.info("train: %s", train)
        score = None if args.no_scoring else _child("score", args.dataset, Path(tmp))
        log.info("score: %s", score)
    machine = f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores"
    print(
        f"\n## Training, reasons and scoring at 1M customers ({pd.Timestamp.now():%Y-%m-%d}, "
        f"{machine})\n"
    )
    print("| stage | rows | wall | peak RSS | target |\n|---|---|---|---|---|")
    print(f"| features at one cutoff | {train['rows']:,} | {train['feature_s']:.0f} s | | |")
    print(
        f"| LightGBM + calibration ({train['features']} features, best iteration "
        f"{train['best_iteration']}) | {train['train_rows']:,} | {train['train_s']:.0f} s | "
        f"{train['peak_rss_gb']:.1f} GB (whole child) | <= 300 s |"
    )
    rows = train["rows"]
    print(
        f"| reasons: path attributions + texts | {rows:,} | "
        f"{train['path_s']:.0f} s + {train['reasons_s']:.0f} s | | <= 120 s |"
    )
    print(
        f"| (reference) exact TreeSHAP + texts, scaled from {train['sample_rows']:,} rows | "
        f"{rows:,} | {train['exact_s']:.0f} s | | |"
    )
    top_decile = train["same_main_cause_top_decile"]
    print(
        f"\nPath vs exact TreeSHAP on {train['sample_rows']:,} customers: same main cause "
        f"{train['same_main_cause']:.1%} (riskiest decile {top_decile:.1%}), "
        f"same first reason {train['same_reason_1']:.1%}.\n"
    )
    if score is not None:
        validate_s = score["stages"].get("time_validate_s", 0.0)
        print(
            f"| scoring end to end, input validation included | {score['rows']:,} | "
            f"{score['score_s']:.0f} s | {score['peak_rss_gb']:.1f} GB | |"
        )
        print(
            f"| scoring: features, predict, reasons, write | {score['rows']:,} | "
            f"{score['score_s'] - validate_s:.0f} s | | <= 300 s, <= 8 GB |"
        )
        stages = ", ".join(f"{k[5:-2]} {v:.0f} s" for k, v in score["stages"].items())
        print(f"\nScoring stages: {stages}.")


if __name__ == "__main__":
    main()
