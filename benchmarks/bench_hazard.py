"""Benchmark the time-to-churn model at 1M subscribers: training and the curves of everyone.

Targets (2 cores): hazard training (what `churnml train` adds: the out-of-time fold, the
long-horizon fold and the refit, each with person-period expansion, down-sampling and
LightGBM) <= 5 min at 1M (customer, cutoff) rows; survival curves for 1M customers <= 1 min.

The feature frame is the real pipeline's (sampling and DuckDB features on a simulated dataset,
default `data/raw/telco_sim`, 24 months), scaled to `--rows` rows by drawing (customer,
cutoff) rows with replacement, each copy a new customer with the same history and exit: the
feature distributions and exit patterns stay those of the simulator, at the target size.
Feature building itself is benchmarked by bench_features.py.

    python benchmarks/bench_hazard.py [--dataset data/raw/telco_sim] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import logging
import platform
import resource
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("bench_hazard")
SOURCE = "source_customer_id"


def _frame(dataset: Path):
    from churnml.config import compose_config
    from churnml.features import resolve_feature_params
    from churnml.io import dataset_as_of, read_table
    from churnml.jobs import build_training_frame
    from churnml.sampling import sample_customers

    cfg = compose_config(
        "train", [f"data.path={dataset}", "data.name=bench", f"paths.root_dir={ROOT}"]
    )
    as_of = dataset_as_of(dataset)
    sample = sample_customers(dataset, cfg.label, cfg.sampling, cfg.seed, as_of=as_of)
    latest = min(f.test_cutoff for f in sample.folds)
    cfg.features = resolve_feature_params(dataset, cfg.features, latest)
    frame, columns = build_training_frame(dataset, sample, cfg)
    customers = read_table(
        dataset, "customers", ["customer_id", "terminated_at", "termination_reason"]
    )
    return cfg, frame, columns, customers, as_of


def _scale(frame: pd.DataFrame, customers: pd.DataFrame, rows: int, seed: int):
    """`rows` (customer, cutoff) rows drawn with replacement; each draw a new customer id."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(frame), rows)
    scaled = frame.iloc[pick].reset_index(drop=True)
    source = scaled["customer_id"].astype(str).to_numpy()
    scaled["customer_id"] = [f"b{i}" for i in range(rows)]
    # Copies of one customer are held out for early stopping together, as one person would be:
    # a copy on each side would let the hold-out keep improving and boosting never stop.
    scaled[SOURCE] = source
    info = customers.set_index(customers["customer_id"].astype(str))
    copies = info.reindex(source).reset_index(drop=True)
    copies["customer_id"] = scaled["customer_id"].to_numpy()
    return scaled, copies


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", type=Path, default=ROOT / "data" / "raw" / "telco_sim")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="LightGBM threads (0: its default, every core; 1 on a machine shared with other "
        "jobs, where OpenMP threads waiting for each other slow boosting down several times)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from churnml.hazard import fit_hazard
    from churnml.hazard_job import _test_cutoff

    started = time.perf_counter()
    cfg, frame, columns, customers, as_of = _frame(args.dataset)
    features_s = time.perf_counter() - started
    scaled, copies = _scale(frame, customers, args.rows, cfg.seed)
    del frame
    cutoffs = [pd.Timestamp(c) for c in sorted(scaled["cutoff"].unique())]
    settings = cfg.hazard
    if args.threads:
        settings.params = {**settings.params, "num_threads": args.threads}
    reasons = list(cfg.label.reasons)
    test = _test_cutoff(cutoffs, as_of, settings.test_follow_up_days)
    long = _test_cutoff(cutoffs, as_of, max(settings.horizons_days))
    timings = {}
    started = time.perf_counter()
    fold = fit_hazard(
        scaled, columns, copies, test, settings, reasons, cfg.seed, holdout_column=SOURCE
    )
    timings["fold"] = time.perf_counter() - started
    t = time.perf_counter()
    fit_hazard(scaled, columns, copies, long, settings, reasons, cfg.seed, holdout_column=SOURCE)
    timings["long fold"] = time.perf_counter() - t
    t = time.perf_counter()
    refit = fit_hazard(
        scaled, columns, copies, as_of, settings, reasons, cfg.seed, fold.best_iteration
    )
    timings["refit"] = time.perf_counter() - t
    train_s = time.perf_counter() - started
    everyone = scaled.drop_duplicates("customer_id").head(args.rows)
    t = time.perf_counter()
    survival = refit.model.survival(everyone)
    curves_s = time.perf_counter() - t
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    load = " / ".join(f"{v:.1f}" for v in __import__("os").getloadavg())
    print(
        f"\n### Time-to-churn model at {args.rows:,} rows ({datetime.now(UTC):%Y-%m-%d})\n\n"
        f"Machine: {platform.machine()}, {__import__('os').cpu_count()} cores; load average "
        f"at the end {load}; LightGBM threads: {args.threads or 'default'}. "
        f"Features: {args.dataset.name} ({features_s:.0f} s, not counted), "
        f"scaled to {args.rows:,} (customer, cutoff) rows over {len(cutoffs)} cutoffs.\n\n"
        "| what | figure | target |\n|---|---|---|\n"
        f"| hazard training (fold + long fold + refit) | {train_s:.0f} s "
        f"({', '.join(f'{k} {v:.0f} s' for k, v in timings.items())}) | <= 300 s |\n"
        f"| person-months per fit (after down-sampling) | {fold.rows:,} (other months kept at "
        f"{fold.sampled_rate:.3f}); {fold.best_iteration} rounds | |\n"
        f"| survival curves ({settings.months} months) for {len(everyone):,} customers | "
        f"{curves_s:.1f} s | <= 60 s |\n"
        f"| peak RSS | {peak_gb:.1f} GB | |\n"
        f"| mean S(12) | {survival[:, -1].mean():.3f} | |\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
