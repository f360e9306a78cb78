"""Simulate a raw churn dataset: `python pipelines/simulate.py simulate=tiny`."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from churnml.simulate import SimulationParams, simulate_dataset

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../conf", config_name="simulate")
def main(cfg: DictConfig) -> Path:
    """Build typed params from `cfg.simulate` and write the dataset under `paths.raw_dir`."""
    # Merging onto the dataclass schema rejects unknown keys and wrongly typed values.
    schema = OmegaConf.structured(SimulationParams)
    params: SimulationParams = OmegaConf.to_object(OmegaConf.merge(schema, cfg.simulate))
    out_dir = Path(cfg.paths.raw_dir) / params.name
    log.info(
        "simulating %d customers over %d months into %s",
        params.n_customers,
        params.n_months,
        out_dir,
    )
    path = simulate_dataset(params, out_dir)
    log.info("dataset written to %s", path)
    return path


if __name__ == "__main__":
    main()
