"""Benchmark training, per-customer reasons and end-to-end batch scoring at 1M customers.

Targets (2 cores): training on 1M (customer, cutoff) rows x the full feature set <= 5 min;
reasons for 1M customers <= 2 min; scoring 1M customers end to end (features, predict,
reasons, write) <= 5 min and <= 8 GB. Each stage runs in its own child process so its peak RSS
is its own.

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
SHAP_SAMPLE_ROWS = 50_000


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

    cfg = _config("train", root, dataset)
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
    # TreeSHAP time grows linearly with rows: measured on a sample, scaled to all rows.
    sample = frame.head(SHAP_SAMPLE_ROWS)
    started = time.perf_counter()
    contrib = explain.shap_contributions(model, sample)
    shap_s = (time.perf_counter() - started) * len(frame) / len(sample)
    started = time.perf_counter()
    reasons = explain.customer_reasons(contrib)
    reasons_s = (time.perf_counter() - started) * len(frame) / len(sample)
    log.warning("SHAP %.0f s, reasons %.0f s (scaled from %d rows)", shap_s, reasons_s, len(sample))
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
        "shap_s": shap_s,
        "reasons_s": reasons_s,
        "reasons_rows": len(frame),
        "sample_rows": len(reasons),
    }


def stage_score(dataset: Path, root: Path) -> dict:
    from churnml.jobs import run_scoring

    cfg = _config("score", root, dataset, "validation.enabled=false")
    started = time.perf_counter()
    result = run_scoring(cfg)
    return {"rows": result.rows, "score_s": time.perf_counter() - started}


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
        "--with-scoring",
        action="store_true",
        help="also score 1M customers end to end (SHAP for every row: slow)",
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
        score = _child("score", args.dataset, Path(tmp)) if args.with_scoring else None
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
    print(
        f"| SHAP (pred_contrib) + reasons, scaled from {train['sample_rows']:,} rows | "
        f"{train['reasons_rows']:,} | "
        f"{train['shap_s']:.0f} s + {train['reasons_s']:.0f} s | | <= 120 s |"
    )
    if score is not None:
        print(
            f"| scoring end to end | {score['rows']:,} | {score['score_s']:.0f} s | "
            f"{score['peak_rss_gb']:.1f} GB | <= 300 s, <= 8 GB |"
        )


if __name__ == "__main__":
    main()
