"""Benchmark the feature library (`make bench`).

(a) All features for one cutoff on the large simulated dataset (1M subscribers, 4 months):
    wall time and peak memory (target: <= 60 s, <= 6 GB on 2 cores).
(b) A straightforward pandas groupby implementation of the call-pattern family against the DuckDB
    call-pattern family: speed and memory ratios (target >= 5x, <= 1/3). pandas does not fit in
    24 GiB at 1M subscribers, so `--pandas-dataset` runs (b) on a smaller dataset (both sides).

Each measurement runs in its own child process so peak RSS is its own; `--repeat` runs each one
several times (timings are noisy on a shared machine). The results replace the features section
of benchmarks/RESULTS.md, with the machine and the date.

    python benchmarks/bench_features.py [--dataset data/raw/telco_sim_large] [--simulate]
        [--pandas-dataset data/raw/telco_sim_200k] [--repeat 2]
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
import time
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger("bench_features")
ROOT = Path(__file__).resolve().parents[1]


def _cutoff(dataset: Path) -> pd.Timestamp:
    from churnml.io import dataset_as_of

    return pd.Timestamp(dataset_as_of(dataset)).normalize()


def _spine(dataset: Path, cutoff: pd.Timestamp) -> pd.DataFrame:
    from churnml.io import read_table

    ids = read_table(dataset, "customers", ["customer_id"])["customer_id"]
    return pd.DataFrame({"customer_id": ids.astype(object), "cutoff": cutoff})


def run_duckdb(dataset: Path, cutoff: pd.Timestamp, families: list[str] | None) -> dict:
    from churnml.features import FeatureParams, build_features

    spine = _spine(dataset, cutoff)
    params = FeatureParams()
    if families:
        params.families = families
    t0 = time.perf_counter()
    out = build_features(dataset, spine, params)
    wall = time.perf_counter() - t0
    return {"rows": len(out), "features": out.shape[1] - 2, "wall_s": wall}


def run_pandas_calls(dataset: Path, cutoff: pd.Timestamp) -> dict:
    """Call-pattern features the plain-pandas way: load the 90-day window, groupby per window."""
    t0 = time.perf_counter()
    spine = _spine(dataset, cutoff)
    lo = cutoff - pd.Timedelta(days=90)
    cols = ["customer_id", "started_at", "direction", "kind", "duration_s", "volume_mb"]
    cols += ["peer_network", "peer_id", "dropped"]
    calls = pd.read_parquet(
        dataset / "calls.parquet",
        columns=cols,
        filters=[("started_at", ">=", lo), ("started_at", "<", cutoff)],
    )
    age_d = (cutoff - calls["started_at"]).dt.total_seconds() / 86400
    voice_out = (calls["kind"] == "voice") & (calls["direction"] == "out")
    feats = {}
    for w in (7, 30, 90):
        c = calls[age_d <= w]
        a = age_d[age_d <= w]
        vo = (c["kind"] == "voice") & (c["direction"] == "out")
        g = c.assign(
            vo_min=np.where(vo, c["duration_s"] / 60, 0.0),
            vo_n=vo.astype(float),
            vi_min=np.where(
                (c["kind"] == "voice") & (c["direction"] == "in"), c["duration_s"] / 60, 0.0
            ),
            so_n=((c["kind"] == "sms") & (c["direction"] == "out")).astype(float),
            data=np.where(c["kind"] == "data", c["volume_mb"].fillna(0), 0.0),
            off=np.where(vo & (c["peer_network"] == "off_net"), c["duration_s"] / 60, 0.0),
            voice=(c["kind"] == "voice").astype(float),
            drop=((c["kind"] == "voice") & c["dropped"]).astype(float),
        ).groupby("customer_id")
        s = g[["vo_min", "vo_n", "vi_min", "so_n", "data", "off", "voice", "drop"]].sum()
        feats[f"voice_out_minutes_{w}d"] = s["vo_min"]
        feats[f"voice_out_calls_{w}d"] = s["vo_n"]
        feats[f"voice_in_minutes_{w}d"] = s["vi_min"]
        feats[f"sms_out_{w}d"] = s["so_n"]
        feats[f"data_mb_{w}d"] = s["data"]
        feats[f"offnet_out_share_{w}d"] = s["off"] / s["vo_min"].replace(0, np.nan)
        feats[f"dropped_call_rate_{w}d"] = s["drop"] / s["voice"].replace(0, np.nan)
        feats[f"distinct_contacts_{w}d"] = c.groupby("customer_id")["peer_id"].nunique()
        del c, a, g
    prev = calls[voice_out & (age_d > 30)]
    p60 = (prev["duration_s"] / 60).groupby(prev["customer_id"]).sum()
    m30 = feats["voice_out_minutes_30d"]
    p60 = p60.reindex(m30.index).fillna(0)
    feats["voice_out_minutes_trend_30d_vs_prev60d"] = (m30 - p60 / 2) / (m30 + p60 / 2).replace(
        0, np.nan
    )
    out_rows = calls[calls["direction"] == "out"]
    last = out_rows.groupby("customer_id")["started_at"].max()
    feats["days_since_last_out_activity"] = (cutoff - last).dt.total_seconds() / 86400
    result = spine.set_index("customer_id").join(pd.DataFrame(feats), how="left")
    wall = time.perf_counter() - t0
    return {"rows": len(result), "features": len(feats), "wall_s": wall}


def _child(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    dataset = Path(args.dataset)
    cutoff = pd.Timestamp(args.cutoff)
    if args.child == "all":
        res = run_duckdb(dataset, cutoff, None)
    elif args.child == "calls":
        res = run_duckdb(dataset, cutoff, ["calls"])
    else:
        res = run_pandas_calls(dataset, cutoff)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    res["peak_rss_gb"] = usage.ru_maxrss / 1024**2
    # CPU seconds of the whole child (all threads): less sensitive than wall time to other
    # work on a shared machine (2 cores: uncontended wall >= cpu / 2).
    res["cpu_s"] = usage.ru_utime + usage.ru_stime
    print("RESULT " + json.dumps(res), flush=True)


def _measure(kind: str, dataset: Path, cutoff: pd.Timestamp) -> dict:
    cmd = [sys.executable, __file__, "--dataset", str(dataset), "--cutoff", str(cutoff)]
    cmd += ["--child", kind]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    sys.stderr.write(proc.stderr[-4000:])
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}", "process_wall_s": time.perf_counter() - t0}
    res = json.loads(lines[-1][7:])
    res["process_wall_s"] = time.perf_counter() - t0
    return res


def _row_counts(dataset: Path) -> str:
    import duckdb

    parts = []
    with duckdb.connect() as con:
        for t in ("customers", "calls", "transfers", "complaints", "bills", "payments"):
            p = dataset / f"{t}.parquet"
            if p.exists():
                n = con.execute(f"SELECT count(*) FROM read_parquet('{p}')").fetchone()[0]
                parts.append(f"{t} {n:,}")
    return ", ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", default=str(ROOT / "data/raw/telco_sim_large"))
    ap.add_argument("--cutoff", default=None, help="default: the dataset's as_of day")
    ap.add_argument("--simulate", action="store_true", help="simulate the dataset when missing")
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--months", type=int, default=4)
    ap.add_argument("--skip-pandas", action="store_true")
    ap.add_argument("--pandas-dataset", default=None, help="dataset for (b) (default: --dataset)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each measurement")
    ap.add_argument("--results", default=str(ROOT / "benchmarks/RESULTS.md"))
    ap.add_argument("--child", choices=["all", "calls", "pandas"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    dataset = Path(args.dataset)
    if not (dataset / "customers.parquet").exists():
        if not args.simulate:
            sys.exit(f"{dataset} not found: run with --simulate or point --dataset at a dataset")
        from churnml.simulate import SimulationParams, simulate_dataset

        log.info(
            "simulating %d customers x %d months into %s", args.customers, args.months, dataset
        )
        simulate_dataset(
            SimulationParams(name=dataset.name, n_customers=args.customers, n_months=args.months),
            dataset,
        )
    cutoff = pd.Timestamp(args.cutoff) if args.cutoff else _cutoff(dataset)
    small = Path(args.pandas_dataset) if args.pandas_dataset else dataset
    small_cutoff = _cutoff(small) if args.pandas_dataset and not args.cutoff else cutoff
    runs: dict[str, list[dict]] = {"all": [], "calls": [], "pandas": [], "calls_small": []}
    for _ in range(max(1, args.repeat)):
        runs["all"].append(_measure("all", dataset, cutoff))
        runs["calls"].append(_measure("calls", dataset, cutoff))
        if not args.skip_pandas:
            runs["pandas"].append(_measure("pandas", small, small_cutoff))
            if small != dataset:
                runs["calls_small"].append(_measure("calls", small, small_cutoff))
    if small == dataset:
        runs["calls_small"] = runs["calls"]
    log.info("results: %s", runs)
    _write_results(Path(args.results), dataset, small, cutoff, runs)


def _fmt(rs: list[dict]) -> str:
    ok = [r for r in rs if "error" not in r]
    if not ok:
        return f"failed ({rs[0]['error']}) | | | "
    walls = " / ".join(f"{r['wall_s']:.1f}" for r in ok)
    mems = " / ".join(f"{r['peak_rss_gb']:.2f}" for r in ok)
    cpus = " / ".join(f"{r.get('cpu_s', float('nan')):.0f}" for r in ok)
    out = f"{ok[0]['features']} features x {ok[0]['rows']:,} rows"
    return f"{walls} s | {cpus} s | {mems} GB | {out}"


def _best(rs: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rs if "error" not in r]
    return min(vals) if vals else None


SECTION = "## Features benchmark"


def _write_results(path: Path, dataset: Path, small: Path, cutoff: pd.Timestamp, runs) -> None:
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    n = max(len(v) for v in runs.values())
    lines = [
        f"{SECTION}, {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {mem_gb:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}.",
        f"Data: `{dataset.name}` ({_row_counts(dataset)}); cutoff {cutoff.date()}.",
    ]
    if small != dataset:
        lines.append(f"(b) data: `{small.name}` ({_row_counts(small)}).")
    lines += [
        "",
        f"Each figure: {n} run(s), in order, each in a fresh process.",
        "",
        "| run | wall | CPU (process) | peak RSS | output |",
        "|---|---|---|---|---|",
        f"| (a) all families, DuckDB, `{dataset.name}` | {_fmt(runs['all'])} |",
        f"| call patterns only, DuckDB, `{dataset.name}` | {_fmt(runs['calls'])} |",
    ]
    if runs["pandas"]:
        if small != dataset:
            lines.append(
                f"| (b) call patterns, DuckDB, `{small.name}` | {_fmt(runs['calls_small'])} |"
            )
        lines.append(
            f"| (b) call patterns, plain pandas, `{small.name}` | {_fmt(runs['pandas'])} |"
        )
        pw, cw = _best(runs["pandas"], "wall_s"), _best(runs["calls_small"], "wall_s")
        pm, cm = _best(runs["pandas"], "peak_rss_gb"), _best(runs["calls_small"], "peak_rss_gb")
        if pw and cw and pm and cm:
            lines += [
                "",
                f"(b) pandas / DuckDB (call patterns, best runs): {pw / cw:.1f}x the time, "
                f"{pm / cm:.1f}x the memory.",
            ]
    lines.append("")
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    # One features section: drop earlier ones (up to the next section of another benchmark).
    kept, skip = [], False
    for line in old.splitlines():
        if line.startswith("## "):
            skip = line.startswith(SECTION)
        if not skip:
            kept.append(line)
    path.write_text("\n".join(kept).rstrip() + "\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
