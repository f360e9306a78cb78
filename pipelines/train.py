"""Training job: validate -> sample -> features -> train -> explain -> log and register.

make train ARGS="model=logreg label.horizon_days=30"
.venv/bin/python pipelines/train.py --cfg job --resolve   # show the effective config
"""

import logging
import sys

import hydra
from omegaconf import DictConfig

from churnml.config import register_configs, to_object
from churnml.errors import exit_on_known_errors
from churnml.jobs import run_training

log = logging.getLogger("churnml.train")
register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    with exit_on_known_errors():
        result = run_training(to_object(cfg))
    print(f"\nMLflow run:           {result.run_id}")
    if result.model_version is not None:
        alias = "champion" if result.promoted else "challenger"
        print(f"Model version:        {result.model_version} ({alias})")
    shown = (
        "test_roc_auc",
        "test_truth_roc_auc",
        "test_pr_auc",
        "test_top_decile_lift",
        "test_brier",
        "test_ece",
        "cv_roc_auc_mean",
    )
    for name in (n for n in shown if n in result.metrics):
        print(f"{name:22s}{result.metrics[name]:.4f}")
    if result.report_path is not None:
        print(f"Report:               {result.report_path}")
    # The sweeper's objective: the validation cutoff, never the test cutoff.
    return result.metrics["val_roc_auc"]


if __name__ == "__main__":
    sys.exit(main())
