"""Benchmark raw-data validation: wall time and peak RSS of `validate_dataset` on one folder.

    python benchmarks/bench_validation.py data/raw/telco_sim_large
    python benchmarks/bench_validation.py --synthetic-calls 20000000   # no dataset needed

With `--synthetic-calls N`, a dataset of `--customers` customers and N call rows is generated
first (by DuckDB, in a child process, so its memory does not count) in a temporary folder, or in
`--out`. The peak RSS reported is the whole validating process's (ru_maxrss): Python, GX,
pandas chunks and DuckDB.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def generate(out: Path, n_calls: int, n_customers: int) -> Path:
    """Write a contract-valid dataset: customers and a big calls table (nothing else)."""
    import duckdb

    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").write_text(json.dumps({"as_of": "2025-01-01T00:00:00"}))
    customers = f"""
        SELECT 'C' || lpad(i::VARCHAR, 8, '0') AS customer_id,
               TIMESTAMP '2020-01-01' + to_days((i % 1500)::INTEGER) AS activated_at,
               NULL::TIMESTAMP AS terminated_at,
               NULL::VARCHAR AS termination_reason,
               'P' || (i % 7)::VARCHAR AS initial_plan_id,
               CASE WHEN i % 3 = 0 THEN 'prepaid' ELSE 'postpaid' END AS payment_type,
               NULL::TIMESTAMP AS commitment_end,
               'R' || (i % 12)::VARCHAR AS region,
               (1940 + i % 70)::BIGINT AS birth_year,
               CASE i % 3 WHEN 0 THEN 'F' WHEN 1 THEN 'M' ELSE 'U' END AS gender
        FROM range({n_customers}) AS t(i)"""
    kinds = "CASE WHEN i % 10 < 6 THEN 'voice' WHEN i % 10 < 8 THEN 'sms' ELSE 'data' END"
    calls = f"""
        SELECT 'C' || lpad((hash(i) % {n_customers})::VARCHAR, 8, '0') AS customer_id,
               TIMESTAMP '2024-01-01' + to_seconds((hash(i * 7) % 31000000)::BIGINT) AS started_at,
               CASE WHEN i % 2 = 0 THEN 'out' ELSE 'in' END AS direction,
               {kinds} AS kind,
               CASE WHEN i % 10 < 6 THEN (hash(i) % 900)::BIGINT ELSE 0 END AS duration_s,
               CASE WHEN i % 10 >= 8 THEN (hash(i) % 5000) / 10.0 END AS volume_mb,
               CASE WHEN i % 10 >= 8 THEN NULL WHEN i % 4 = 0 THEN 'off_net' ELSE 'on_net' END
                   AS peer_network,
               CASE WHEN i % 10 < 8 AND i % 4 = 0 THEN 'beta' END AS peer_operator,
               CASE WHEN i % 10 < 8 THEN 'X' || (hash(i * 3) % 1000000)::VARCHAR END AS peer_id,
               i % 97 = 0 AS dropped
        FROM range({n_calls}) AS t(i)"""
    with duckdb.connect() as con:
        con.execute(f"COPY ({customers}) TO '{out / 'customers.parquet'}' (FORMAT parquet)")
        con.execute(
            f"COPY ({calls}) TO '{out / 'calls.parquet'}' (FORMAT parquet, ROW_GROUP_SIZE 1000000)"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset_dir", nargs="?", type=Path)
    parser.add_argument("--chunk-rows", type=int, default=2_000_000)
    parser.add_argument("--docs-dir", type=Path, default=None)
    parser.add_argument("--synthetic-calls", type=int, default=None)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=None, help="where to keep synthetic data")
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.generate_only:
        generate(args.out, args.synthetic_calls, args.customers)
        return

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    tmp = None
    dataset_dir = args.dataset_dir
    if args.synthetic_calls:
        if args.out is None:
            tmp = tempfile.TemporaryDirectory(prefix="bench_validation_")
            args.out = Path(tmp.name) / "synthetic"
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--generate-only",
                "--synthetic-calls",
                str(args.synthetic_calls),
                "--customers",
                str(args.customers),
                "--out",
                str(args.out),
            ],
            check=True,
        )
        print(f"generated {args.synthetic_calls:,} calls in {time.perf_counter() - t0:.1f} s")
        dataset_dir = args.out
    if dataset_dir is None:
        parser.error("give a dataset folder or --synthetic-calls N")

    from churnml.validation import validate_dataset

    base = _rss_mib()
    t0 = time.perf_counter()
    report = validate_dataset(dataset_dir, docs_dir=args.docs_dir, chunk_rows=args.chunk_rows)
    wall = time.perf_counter() - t0
    result = {
        "dataset": str(dataset_dir),
        "rows": report.tables,
        "chunk_rows": args.chunk_rows,
        "success": report.success,
        "failures": [f.message() for f in report.failures],
        "wall_s": round(wall, 1),
        "rss_before_mib": round(base),
        "peak_rss_mib": round(_peak_rss_mib()),
    }
    print(json.dumps(result, indent=2))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
