"""Batch scoring job: champion model -> scores with reasons, value, action; safe to re-run.

    make score ARGS="scoring.date=2025-11-01"
Exit codes: 0 ok, 2 bad input, 3 no champion, 4 no eligible customers, 5 locked (README).
"""

import logging
import sys

import hydra
from omegaconf import DictConfig

from churnml.config import register_configs, to_object
from churnml.errors import exit_on_known_errors
from churnml.jobs import run_scoring

log = logging.getLogger("churnml.score")
register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="score")
def main(cfg: DictConfig) -> None:
    with exit_on_known_errors():
        result = run_scoring(to_object(cfg))
    print(f"\nScored {result.rows:,} customers with model version {result.model_version}")
    print(f"Scores:        {result.scores_path}")
    print(f"Contact list:  {result.contact_list_path}")
    print(f"Monitoring:    {result.monitoring_path}")
    for warning in result.warnings:
        print(f"WARNING: {warning}")


if __name__ == "__main__":
    sys.exit(main())
