"""Run every benchmark in turn (`make bench`); each prints a Markdown block for RESULTS.md.

The 1M-subscriber dataset is generated first when missing (`simulate=large`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LARGE = ROOT / "data" / "raw" / "telco_sim_large"
BENCHMARKS = (
    "bench_simulate.py",
    "bench_validation.py",
    "bench_features.py",
    "bench_model.py",
    "backtest_scoring.py",
)


def main() -> int:
    if not (LARGE / "manifest.json").exists():
        subprocess.run(
            [sys.executable, str(ROOT / "pipelines" / "simulate.py"), "simulate=large"],
            check=True,
            cwd=ROOT,
        )
    failed = []
    for script in BENCHMARKS:
        path = ROOT / "benchmarks" / script
        if not path.exists():
            continue
        print(f"\n=== {script} ===", flush=True)
        if subprocess.run([sys.executable, str(path)], cwd=ROOT).returncode:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
