"""Run every benchmark in turn (`make bench`); each prints or records a Markdown block for
benchmarks/RESULTS.md.

The 1M-subscriber dataset (and a 200k one for the pandas baseline, which does not fit in
memory at 1M) are generated first when missing, both at an operator feed's density
(`simulate=large`), as is the 200k x 6 months dense dataset nightly scoring is timed on, and
two default-config simulations with seeds never developed on, for the uplift model.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "raw"
LARGE = RAW / "telco_large"
MEDIUM = RAW / "telco_sim_200k"
DEFAULT = RAW / "telco_sim"
DENSE = RAW / "telco_dense"
# Default-config simulations whose seeds were never developed on (uplift against the truth).
HELD_OUT_SEEDS = (6061, 7071)
HELD_OUT = tuple(RAW / f"telco_sim_seed{seed}" for seed in HELD_OUT_SEEDS)
BENCHMARKS: tuple[tuple[str, ...], ...] = (
    ("bench_simulate.py",),
    ("bench_validation.py", str(DENSE), "--record"),
    ("bench_features.py", "--dataset", str(LARGE), "--pandas-dataset", str(MEDIUM)),
    ("bench_model.py", "--dataset", str(LARGE)),
    ("backtest_scoring.py", "--dataset", str(DEFAULT)),
    ("bench_scoring.py", str(DENSE), "--train", "--record"),
    ("bench_scoring.py", str(LARGE), "--model", "churnml_telco_dense", "--record"),
    ("uplift_truth.py", *map(str, HELD_OUT), "--record"),
)


def _simulate(target: Path, *overrides: str) -> None:
    if not (target / "manifest.json").exists():
        subprocess.run(
            [sys.executable, "-m", "churnml", "simulate", *overrides],
            check=True,
            cwd=ROOT,
        )


def main() -> int:
    _simulate(DEFAULT)
    _simulate(LARGE, "simulate=large")
    _simulate(DENSE, "simulate=dense")
    for seed, target in zip(HELD_OUT_SEEDS, HELD_OUT, strict=True):
        _simulate(target, f"simulate.seed={seed}", f"simulate.name={target.name}")
    _simulate(
        MEDIUM, "simulate=large", "simulate.name=telco_sim_200k", "simulate.n_customers=200000"
    )
    failed = []
    for script, *args in BENCHMARKS:
        print(f"\n=== {script} {' '.join(args)} ===", flush=True)
        command = [sys.executable, str(ROOT / "benchmarks" / script), *args]
        if subprocess.run(command, cwd=ROOT).returncode:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
