"""Benchmark the simulator: wall time and peak memory of one config, as a Markdown row.

    python benchmarks/bench_simulate.py                 # simulate/large.yaml (1M, 4 months)
    python benchmarks/bench_simulate.py --config default --keep data/raw/bench

Peak memory is the peak resident set size of this process (and any children) from
`resource.getrusage(...).ru_maxrss`, which on Linux reports KiB; the simulation runs in-process,
so it is the simulator's own peak including the Python interpreter and imported libraries.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from churnml.config import CONF_DIR
from churnml.simulate import SimulationParams, simulate_dataset


def _params(config: str, overrides: list[str]) -> SimulationParams:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="simulate", overrides=[f"simulate={config}", *overrides])
    return OmegaConf.to_object(
        OmegaConf.merge(OmegaConf.structured(SimulationParams), cfg.simulate)
    )


def _peak_rss_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="large", help="src/churnml/conf/simulate/<config>.yaml")
    parser.add_argument("--keep", type=Path, help="write here and keep the output")
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides, e.g. simulate.chunk_size=25000"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    params = _params(args.config, args.overrides)
    out_dir = args.keep or Path(tempfile.mkdtemp(prefix="bench_simulate_")) / params.name
    start = time.perf_counter()
    simulate_dataset(params, out_dir)
    wall = time.perf_counter() - start
    peak = _peak_rss_mib()
    counts = json.loads((out_dir / "manifest.json").read_text())["row_counts"]
    size_mib = sum(p.stat().st_size for p in out_dir.rglob("*.parquet")) / 2**20
    if args.keep is None:
        shutil.rmtree(out_dir.parent)

    print(
        "| config | customers | months | chunk | call rows | all rows | parquet MiB | wall s "
        "| rows/s | peak RSS MiB | cores | python |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    total = sum(v for k, v in counts.items() if k != "truth")
    print(
        f"| {args.config} | {params.n_customers:,} | {params.n_months} | {params.chunk_size:,} "
        f"| {counts['calls']:,} | {total:,} | {size_mib:,.0f} | {wall:,.1f} "
        f"| {total / wall:,.0f} | {peak:,.0f} | {os.cpu_count()} | {platform.python_version()} |"
    )


if __name__ == "__main__":
    main()
