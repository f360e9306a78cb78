"""Benchmark raw-data validation against building features from the same rows (issue #16).

    python benchmarks/bench_validation.py data/raw/telco_dense [--repeat 2] [--record]

On one dataset, each measurement in its own child process (so its peak RSS is its own):
  1. cold validation of the calls table alone (no verdict cache): every calls rule;
  2. the call-pattern feature family for every customer at the data's as_of (one cutoff);
  3. cold validation of the whole dataset (every table, every rule);
  4. the same again with the verdict cache filled by 3 (what scoring after training costs).
Target: 1 at most half of 2. Measurements alternate (1, 2, 1, 2, ...) so that load from other
processes on a shared machine hits both sides alike. `--record` replaces the validation section
of benchmarks/RESULTS.md with the machine, the date and the load average.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from results_file import record_section

SECTION = "## Raw-data validation: one scan per table (issue #16)"


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measure(kind: str, dataset: Path, cache_dir: Path) -> dict:
    """Run one measurement in this process (called in a child)."""
    import pandas as pd

    t0 = time.perf_counter()
    cpu0 = _cpu_s()
    if kind == "features":
        from churnml.features import FeatureParams, build_features
        from churnml.io import dataset_as_of, read_table

        cutoff = pd.Timestamp(dataset_as_of(dataset)).normalize()
        ids = read_table(dataset, "customers", ["customer_id"])["customer_id"]
        spine = pd.DataFrame({"customer_id": ids.astype(object), "cutoff": cutoff})
        params = FeatureParams()
        params.families = ["calls"]
        t0 = time.perf_counter()
        cpu0 = _cpu_s()
        out = build_features(dataset, spine, params)
        rows = len(out)
    else:
        from churnml.validation import validate_dataset

        tables = ["calls"] if kind == "calls" else None
        cache = cache_dir if kind in ("all", "warm") else None
        report = validate_dataset(dataset, tables=tables, cache_dir=cache)
        if not report.success:
            raise SystemExit(report.summary())
        rows = sum(report.tables.values())
    wall = time.perf_counter() - t0
    return {
        "kind": kind,
        "wall_s": wall,
        "cpu_s": _cpu_s() - cpu0,
        "rows": rows,
        "rss": _peak_rss_mib(),
    }


def _child(kind: str, dataset: Path, cache_dir: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, str(dataset), "--child", kind, "--cache-dir", str(cache_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset_dir", type=Path)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--record", action="store_true")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        logging.basicConfig(level=logging.WARNING)
        print(json.dumps(_measure(args.child, args.dataset_dir, args.cache_dir)))
        return

    runs: dict[str, list[dict]] = {"calls": [], "features": [], "all": [], "warm": []}
    with tempfile.TemporaryDirectory(prefix="bench_validation_") as tmp:
        for _ in range(args.repeat):
            for kind in ("calls", "features"):
                runs[kind].append(_child(kind, args.dataset_dir, Path(tmp) / "none"))
                print(json.dumps(runs[kind][-1]), flush=True)
        for kind in ("all", "warm"):
            runs[kind].append(_child(kind, args.dataset_dir, Path(tmp) / "cache"))
            print(json.dumps(runs[kind][-1]), flush=True)

    def best(kind: str) -> dict:
        return min(runs[kind], key=lambda r: r["wall_s"])

    pairs = list(zip(runs["calls"], runs["features"], strict=True))
    ratios = [v["wall_s"] / f["wall_s"] for v, f in pairs]
    cpu_ratios = [v["cpu_s"] / f["cpu_s"] for v, f in pairs]
    lines = [
        SECTION,
        "",
        f"{date.today()}, {platform.machine()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} at the end (other processes shared the cores).",
        f"Dataset `{args.dataset_dir}`; {best('all')['rows']:,} rows in all tables.",
        "",
        "| measurement | best wall | its CPU time | peak RSS | walls of every run |",
        "|---|---|---|---|---|",
    ]
    names = {
        "calls": "cold validation of calls (every rule)",
        "features": "call-pattern features, all customers, one cutoff",
        "all": "cold validation, every table",
        "warm": "validation again, tables unchanged (verdict cache)",
    }
    for kind, name in names.items():
        walls = ", ".join(f"{r['wall_s']:.1f} s" for r in runs[kind])
        b = best(kind)
        lines.append(
            f"| {name} | {b['wall_s']:.1f} s | {b['cpu_s']:.1f} s | {b['rss']:,.0f} MiB | {walls} |"
        )
    lines += [
        "",
        "Validation of calls / call features, pairwise: "
        + ", ".join(f"{r:.2f}" for r in ratios)
        + " in wall time, "
        + ", ".join(f"{r:.2f}" for r in cpu_ratios)
        + " in CPU time (target: at most 0.5; CPU time is the fairer figure on shared cores).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.record:
        record_section(SECTION, text)


if __name__ == "__main__":
    main()
