"""Measure the work Spark does for features and for nightly scoring (issue #17): task time
summed over tasks (core-seconds: executor run time, and its CPU part) and shuffle bytes, per
phase, from Spark's own event log. These are the measured inputs of the 50M-subscriber sizing
in docs/spark.md.

One local session (event log on) runs, in order and each tagged as a phase:
  features  every feature of every customer at the data's as_of, collected (as bench_spark.py);
  score     `churnml score scoring.engine=spark` (validation on Spark, features again, scoring
            with the champion, checks, the write, contact list and monitoring); its validation
            is tagged `validate`.
A champion is trained first with DuckDB in `--root` when it has none (`churnml train`, small
settings: the scoring work does not depend on how well the model was tuned).

    python benchmarks/bench_spark_work.py [--dataset data/raw/telco_sim_spark_200k]
        [--root /tmp/churnml_spark_work] [--master local[2]]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import psutil
from results_file import record_section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Spark work per phase (task time and shuffle), issue #17"
PHASE = "churnml.phase"
TRAIN = [
    "model=lightgbm_small",
    "explain.enabled=false",
    "hazard.enabled=false",
    "sampling.folds=1",
    "sampling.max_train_cutoffs=3",
]


def _event_files(logs: Path) -> list[Path]:
    """The event log's files in order: one file, or Spark 4's `eventlog_v2_<app>/events_<n>_*`
    (rolling) parts."""
    files = [p for p in logs.rglob("*") if p.is_file() and not p.name.startswith((".", "app"))]
    rolled = [p for p in files if p.name.startswith("events_")]
    if rolled:
        return sorted(rolled, key=lambda p: int(p.name.split("_")[1]))
    if len(files) != 1:
        raise RuntimeError(f"expected one event log in {logs}, found {files}")
    return files


def _events(logs: Path):
    for file in _event_files(logs):
        with file.open() as lines:
            for line in lines:
                yield json.loads(line)


def summarize(logs: Path) -> dict[str, dict[str, float]]:
    """Per phase (the jobs' `churnml.phase` property): wall from its first job's submission to
    its last job's end, stages, tasks, executor run time and CPU time summed over tasks (s),
    shuffle write and read, input bytes, bytes spilled to disk."""
    job_phase: dict[int, str] = {}
    stage_phase: dict[int, str] = {}
    span: dict[str, list[float]] = {}
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for event in _events(logs):
        kind = event["Event"]
        if kind == "SparkListenerJobStart":
            phase = (event.get("Properties") or {}).get(PHASE, "other")
            job_phase[event["Job ID"]] = phase
            for stage in event.get("Stage IDs", []):
                stage_phase.setdefault(stage, phase)
            at = event["Submission Time"] / 1e3
            first = span.setdefault(phase, [at, at])
            first[0] = min(first[0], at)
        elif kind == "SparkListenerJobEnd":
            phase = job_phase.get(event["Job ID"], "other")
            span.setdefault(phase, [0.0, 0.0])[1] = max(
                span[phase][1], event["Completion Time"] / 1e3
            )
        elif kind == "SparkListenerStageCompleted":
            stage = event["Stage Info"]["Stage ID"]
            out[stage_phase.get(stage, "other")]["stages"] += 1
        elif kind == "SparkListenerTaskEnd":
            metrics = event.get("Task Metrics") or {}
            phase = out[stage_phase.get(event["Stage ID"], "other")]
            phase["tasks"] += 1
            phase["run_s"] += metrics.get("Executor Run Time", 0) / 1e3
            phase["cpu_s"] += metrics.get("Executor CPU Time", 0) / 1e9
            read = metrics.get("Shuffle Read Metrics") or {}
            phase["shuffle_read"] += read.get("Remote Bytes Read", 0) + read.get(
                "Local Bytes Read", 0
            )
            write = metrics.get("Shuffle Write Metrics") or {}
            phase["shuffle_write"] += write.get("Shuffle Bytes Written", 0)
            phase["input"] += (metrics.get("Input Metrics") or {}).get("Bytes Read", 0)
            phase["spill_disk"] += metrics.get("Disk Bytes Spilled", 0)
    for phase, (start, end) in span.items():
        out[phase]["wall_s"] = end - start
    return {k: dict(v) for k, v in out.items()}


CHILD = r"""
import sys, time
import pandas as pd
dataset, root, master, logs = sys.argv[1:5]
from churnml.config import SparkConfig, compose_config
from churnml.features import FeatureParams, resolve_feature_params
from churnml.io import dataset_as_of, read_table
from churnml.spark.features import build_features_spark, features_to_pandas
from churnml.spark.session import spark_session
from churnml.spark.tables import read_dataset
import churnml.spark.jobs as spark_jobs
from churnml.jobs import run_scoring

conf = {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "8",
        "spark.driver.memory": "6g", "spark.ui.showConsoleProgress": "false",
        "spark.eventLog.enabled": "true", "spark.eventLog.dir": logs,
        "spark.eventLog.compress": "false"}
spark = spark_session(SparkConfig(master=master, conf=conf))
spark.sparkContext.setLogLevel("ERROR")
sc = spark.sparkContext
walls = {}

sc.setLocalProperty("churnml.phase", "features")
t0 = time.perf_counter()
cutoff = pd.Timestamp(dataset_as_of(dataset)).normalize()
ids = read_table(dataset, "customers", ["customer_id"])["customer_id"].astype(str)
spine = pd.DataFrame({"customer_id": ids, "cutoff": cutoff})
params = resolve_feature_params(dataset, FeatureParams(), cutoff)
frame = features_to_pandas(
    build_features_spark(spark, read_dataset(spark, dataset), spine, params), spine)
walls["features"] = time.perf_counter() - t0

validate = spark_jobs._validate_on_spark
def tagged(cfg, session):
    sc.setLocalProperty("churnml.phase", "validate")
    try:
        return validate(cfg, session)
    finally:
        sc.setLocalProperty("churnml.phase", "score")
spark_jobs._validate_on_spark = tagged
sc.setLocalProperty("churnml.phase", "score")
t0 = time.perf_counter()
cfg = compose_config("score", [
    f"paths.root_dir={root}", f"run_dir={root}/logs/score_spark", f"data.path={dataset}",
    "data.name=spark_work", "scoring.engine=spark", f"scoring.output_dir={root}/scores"])
result = run_scoring(cfg)
walls["score"] = time.perf_counter() - t0
print("RESULT", __import__("json").dumps({"rows_features": len(frame), "rows_scored": result.rows,
      "app": sc.applicationId, "walls": walls}), flush=True)
spark.stop()
"""


def _env() -> dict[str, str]:
    """The environment without a tracking URI: MLflow runs go to `--root`'s store."""
    return {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}


def _champion(root: Path, dataset: Path) -> None:
    """Train (DuckDB) into `root` unless a champion is there."""
    if (root / "mlflow.db").exists():
        return
    started = time.perf_counter()
    cmd = [str(Path(sys.executable).parent / "churnml"), "train", f"paths.root_dir={root}"]
    cmd += [f"run_dir={root}/logs/train", f"data.path={dataset}", "data.name=spark_work", *TRAIN]
    subprocess.run(cmd, check=True, env=_env())
    print(f"trained the champion in {time.perf_counter() - started:.0f} s")


def _run(dataset: Path, root: Path, master: str) -> tuple[Path, dict]:
    """Train when needed, then the features and score phases in one Spark session; the event
    log's folder and the child's counts and walls (also kept as `result.json` beside it)."""
    _champion(root, dataset)
    logs = Path(tempfile.mkdtemp(prefix="spark_events_"))
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(dataset), str(root), master, f"file://{logs}"],
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"the Spark run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    (logs / "result.json").write_text(lines[-1][7:])
    return logs, json.loads(lines[-1][7:])


def _counts_from_outputs(dataset: Path, root: Path) -> dict:
    """Rows of a finished run, when only its event log was kept (`--from-events`)."""
    import duckdb

    scores = sorted(root.glob("scores/**/scores.parquet"))[-1]
    with duckdb.connect() as con:
        customers = con.execute(
            f"SELECT count(*) FROM read_parquet('{dataset / 'customers.parquet'}')"
        ).fetchone()[0]
        scored = con.execute(f"SELECT count(*) FROM read_parquet('{scores}/*.parquet')").fetchone()
    return {"rows_features": customers, "rows_scored": scored[0], "walls": {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, default=ROOT / "data/raw/telco_sim_spark_200k")
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "spark_work")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--from-events", type=Path, help="summarize this run's event log only")
    args = parser.parse_args()
    dataset, root = args.dataset.resolve(), args.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    load_before = psutil.getloadavg()
    if args.from_events:
        logs = args.from_events
        kept = logs / "result.json"
        info = (
            json.loads(kept.read_text()) if kept.exists() else _counts_from_outputs(dataset, root)
        )
    else:
        logs, info = _run(dataset, root, args.master)
    load_after = psutil.getloadavg()
    phases = summarize(logs)
    manifest = json.loads((dataset / "manifest.json").read_text())
    subscribers = info["rows_features"]
    import duckdb

    with duckdb.connect() as con:
        as_of = manifest["as_of"]
        calls_90 = con.execute(
            f"SELECT count(*) FROM read_parquet('{dataset / 'calls.parquet'}') WHERE started_at"
            f" >= TIMESTAMP '{as_of}' - INTERVAL 90 DAY AND started_at < TIMESTAMP '{as_of}'"
        ).fetchone()[0]
    # Customer-months of call history the features read at one cutoff (90 days ~ 3 months).
    cm = subscribers * 3 / 1e6
    load = (
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
        if not args.from_events
        else f"load average {load_after[0]:.1f} when summarized"
    )
    lines = [
        SECTION,
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.machine()}, "
        f"{psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GB; {load}. "
        f"Spark local mode ({args.master}, 8 shuffle partitions), event log of one session: "
        f"`python benchmarks/bench_spark_work.py --dataset {args.dataset}`.",
        "",
        f"Data: {dataset.name}, {subscribers:,} subscribers at the as_of, "
        f"{calls_90:,} call rows in the 90 days the features read "
        f"({calls_90 / subscribers:.0f} a subscriber; {cm:.2f} million customer-months). "
        f"Scored: {info['rows_scored']:,} eligible customers.",
        "",
        "| phase | wall (jobs) | stages | tasks | task time (core-s) | of it CPU (core-s) "
        "| shuffle write | shuffle read | spilled to disk |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("features", "validate", "score", "other"):
        p = phases.get(name)
        if not p:
            continue
        lines.append(
            f"| {name} | {p.get('wall_s', 0):.0f} s | {p.get('stages', 0):.0f} | "
            f"{p.get('tasks', 0):.0f} | {p.get('run_s', 0):.0f} | {p.get('cpu_s', 0):.0f} | "
            f"{p.get('shuffle_write', 0) / 1e6:.0f} MB | {p.get('shuffle_read', 0) / 1e6:.0f} MB"
            f" | {p.get('spill_disk', 0) / 1e6:.0f} MB |"
        )
    f = phases["features"]
    s = phases.get("score", {})
    beyond = {k: s.get(k, 0.0) - f.get(k, 0.0) for k in ("run_s", "cpu_s", "shuffle_write")}
    v = phases.get("validate", {})
    lines += [
        "",
        "Per unit (the measured inputs of the sizing in docs/spark.md; task time, with its CPU "
        "part in brackets):",
        "",
        f"- features: {f['run_s'] / cm:.0f} ({f['cpu_s'] / cm:.0f}) core-s per million "
        f"customer-months of call history, {f['run_s'] / calls_90 * 1e6:.1f} "
        f"({f['cpu_s'] / calls_90 * 1e6:.1f}) core-µs per call row; shuffle written "
        f"{f['shuffle_write'] / subscribers / 1e3:.2f} kB per subscriber "
        f"({f['shuffle_write'] / calls_90:.1f} bytes per call row).",
        f"- the score job beyond its features (its score phase minus the features phase: "
        f"scoring, ranks, checks, write, contact list, monitoring): {beyond['run_s']:.0f} "
        f"({beyond['cpu_s']:.0f}) core-s, {beyond['run_s'] / info['rows_scored'] * 1e6 / 60:.0f}"
        f" ({beyond['cpu_s'] / info['rows_scored'] * 1e6 / 60:.0f}) core-minutes per million "
        "scored.",
        f"- validation on Spark: {v.get('run_s', 0):.0f} ({v.get('cpu_s', 0):.0f}) core-s, "
        f"{v.get('run_s', 0) / subscribers * 1e6 / 60:.0f} "
        f"({v.get('cpu_s', 0) / subscribers * 1e6 / 60:.0f}) core-minutes per million "
        "subscribers (all 6 months of every table).",
        "",
    ]
    record_section(SECTION, "\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps(phases, indent=1))


if __name__ == "__main__":
    main()
