"""The time-to-churn model against the simulator's truth, out of time (issue #18's "done when").

Runs what `churnml train` runs for the hazard model (sampling, features, the out-of-time
fold, the long fold and the refit; MLflow in a throwaway store, nothing registered) on a
simulated dataset and prints the 90-day figures: AUC of `churn_probability_90d` on who left
within 90 days of the test cutoff, the AUC of the true 90-day probabilities on the same
customers, the gap, the mean against the realised rate, and that 30d <= 90d for everyone.

    python -m churnml simulate simulate.seed=2718 simulate.name=telco_sim_seed2718
    python benchmarks/hazard_truth.py --dataset data/raw/telco_sim_seed2718
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from churnml import tracking
    from churnml.config import compose_config
    from churnml.features import resolve_feature_params
    from churnml.hazard_job import time_to_churn_columns, train_hazard
    from churnml.io import dataset_as_of
    from churnml.jobs import build_training_frame
    from churnml.sampling import sample_customers

    with tempfile.TemporaryDirectory() as root:
        cfg = compose_config(
            "train",
            [
                f"data.path={args.dataset}",
                "data.name=truth_check",
                f"paths.root_dir={root}",
                "tracking.register=false",
            ],
        )
        started = time.perf_counter()
        as_of = dataset_as_of(args.dataset)
        sample = sample_customers(args.dataset, cfg.label, cfg.sampling, cfg.seed, as_of=as_of)
        cfg.features = resolve_feature_params(
            args.dataset, cfg.features, min(f.test_cutoff for f in sample.folds)
        )
        frame, columns = build_training_frame(args.dataset, sample, cfg)
        with tracking.mlflow_run(cfg.tracking, run_name="hazard-truth"):
            hazard_started = time.perf_counter()
            result = train_hazard(cfg, args.dataset, frame, columns, as_of)
            hazard_s = time.perf_counter() - hazard_started
        m = result.metrics
        test_cutoff = pd.Timestamp(result.model.settings["test_cutoff"])
        keys = frame[frame["cutoff"] == test_cutoff]
        survival = result.model.survival(keys)
        ttc = time_to_churn_columns(
            survival,
            np.ones(len(keys)),
            np.full(len(keys), "D"),
            keys["customer_id"].to_numpy(),
            cfg.hazard,
            cfg.features.value_tier_cuts,
        )
        ordered = bool((ttc["churn_probability_30d"] <= ttc["churn_probability_90d"]).all())
    gap = m["hazard_test_truth_auc_90d"] - m["hazard_test_auc_90d"]
    ratio = m["hazard_test_mean_probability_90d"] / m["hazard_test_realised_rate_90d"]
    print(
        f"\n| dataset | test cutoff | customers | 90d AUC | truth 90d AUC | gap | mean 90d "
        f"| realised 90d | mean / realised | 30d <= 90d | concordance | IBS skill vs KM |\n"
        f"|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        f"| {args.dataset.name} | {test_cutoff.date()} | {int(m['hazard_test_rows']):,} "
        f"| {m['hazard_test_auc_90d']:.4f} | {m['hazard_test_truth_auc_90d']:.4f} | {gap:.4f} "
        f"| {m['hazard_test_mean_probability_90d']:.4f} | {m['hazard_test_realised_rate_90d']:.4f}"
        f" | {ratio:.3f} | {'every customer' if ordered else 'NO'} "
        f"| {m['hazard_test_concordance']:.4f} | {m['hazard_test_ibs_skill']:.3f} |\n"
        f"\nhazard stage {hazard_s:.0f} s (fold, long fold, refit); whole script "
        f"{time.perf_counter() - started:.0f} s"
    )
    for key in sorted(k for k in m if k.startswith("hazard_long_test_")):
        print(f"{key}: {m[key]:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
