"""Benchmark the Spark feature engine against DuckDB on the same simulated data (issue #17).

Both engines build every feature for every customer at one cutoff (the nightly scoring spine),
each in its own child process, timed from the process start (the Spark run includes starting
its local JVM) with the peak memory of the whole process tree sampled every 0.2 s (the
JVM is a child of the Python process). The two feature tables are also compared (parity, the
largest absolute difference). Results go to benchmarks/RESULTS.md with the machine and date.

    python benchmarks/bench_spark.py [--customers 200000] [--months 6] [--master local[2]]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import psutil
from results_file import record_section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Spark engine against DuckDB, issue #17"

CHILD = r"""
import json, sys, time
import pandas as pd
started = time.perf_counter()
engine, dataset, master, out = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
from churnml.features import FeatureParams, build_features, resolve_feature_params
from churnml.io import dataset_as_of, read_table
cutoff = pd.Timestamp(dataset_as_of(dataset)).normalize()
ids = read_table(dataset, "customers", ["customer_id"])["customer_id"].astype(str)
spine = pd.DataFrame({"customer_id": ids, "cutoff": cutoff})
params = resolve_feature_params(dataset, FeatureParams(), cutoff)
if engine == "duckdb":
    frame = build_features(dataset, spine, params)
else:
    from churnml.config import SparkConfig
    from churnml.spark.features import build_features_spark, features_to_pandas
    from churnml.spark.session import spark_session
    from churnml.spark.tables import read_dataset
    conf = {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "8",
            "spark.driver.memory": "6g", "spark.ui.showConsoleProgress": "false"}
    spark = spark_session(SparkConfig(master=master, conf=conf))
    spark.sparkContext.setLogLevel("ERROR")
    frame = features_to_pandas(
        build_features_spark(spark, read_dataset(spark, dataset), spine, params), spine)
frame.to_parquet(out)
print(json.dumps({"rows": len(frame), "features": frame.shape[1] - 2,
                  "inner_s": time.perf_counter() - started}))
"""


def run(engine: str, dataset: Path, master: str, out: Path) -> dict:
    started = time.perf_counter()
    log = out.with_suffix(".log")  # the child's stderr: Spark's log, and the error if it fails
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, engine, str(dataset), master, str(out)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.2)
    wall = time.perf_counter() - started
    if proc.returncode:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{engine} run failed (exit {proc.returncode}); stderr ends:\n{tail}")
    info = json.loads(proc.stdout.read().strip().splitlines()[-1])
    return {**info, "wall_s": wall, "peak_gb": peak / 1e9}


def parity(a_path: Path, b_path: Path) -> float:
    import numpy as np
    import pandas as pd

    a, b = pd.read_parquet(a_path), pd.read_parquet(b_path)
    numeric = [
        c for c in a.columns if c not in ("customer_id", "cutoff") and a[c].dtype.kind == "f"
    ]
    x, y = a[numeric].to_numpy(float), b[numeric].to_numpy(float)
    if not np.array_equal(np.isnan(x), np.isnan(y)):
        return float("inf")
    return float(np.nanmax(np.abs(x - y))) if x.size else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--calls-per-month", type=float, default=60.0)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--dir", type=Path, default=ROOT / "data" / "raw")
    args = parser.parse_args()
    from churnml.simulate import SimulationParams, simulate_dataset

    name = f"telco_sim_spark_{args.customers // 1000}k"
    dataset = args.dir / name
    if not (dataset / "manifest.json").exists():
        started = time.perf_counter()
        simulate_dataset(
            SimulationParams(
                name=name,
                n_customers=args.customers,
                n_months=args.months,
                calls_per_month=args.calls_per_month,
            ),
            dataset,
        )
        print(f"simulated {dataset} in {time.perf_counter() - started:.0f} s")
    calls = sum(f.stat().st_size for f in dataset.glob("calls.parquet"))
    out = {e: dataset.parent / f".{name}.{e}.features.parquet" for e in ("duckdb", "spark")}
    results = {e: run(e, dataset, args.master, out[e]) for e in ("duckdb", "spark")}
    gap = parity(out["duckdb"], out["spark"])
    load = psutil.getloadavg()
    lines = [
        SECTION,
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.machine()}, "
        f"{psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GB; load "
        f"average {load[0]:.1f} at the end (other sessions' tests shared the cores: upper "
        "bounds). `python benchmarks/bench_spark.py "
        f"--customers {args.customers} --months {args.months}`.",
        "",
        f"Data: {args.customers:,} simulated subscribers, {args.months} months, "
        f"{args.calls_per_month:g} call rows per engaged customer-month "
        f"(calls.parquet {calls / 1e6:.0f} MB). Spine: every customer at the data's as_of.",
        "",
        "| engine | wall (process start to features on the driver) | peak memory (process tree) "
        "| rows x features |",
        "|---|---|---|---|",
    ]
    for engine, r in results.items():
        what = (
            "DuckDB" if engine == "duckdb" else f"Spark local mode ({args.master}), with JVM start"
        )
        lines.append(
            f"| {what} | {r['wall_s']:.1f} s | {r['peak_gb']:.2f} GB | "
            f"{r['rows']:,} x {r['features']} |"
        )
    lines += [
        "",
        f"Largest difference between the two feature tables: {gap:.1e} (same null pattern: "
        f"{'yes' if gap != float('inf') else 'no'}).",
        "",
    ]
    record_section(SECTION, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
