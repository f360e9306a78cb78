"""Benchmark nightly scoring end to end, timed from outside as a scheduler runs it (issue #16).

    python benchmarks/bench_scoring.py data/raw/telco_dense [--name telco_dense] [--train]
        [--model churnml_telco_dense] [--record]

Runs `churnml score` in a child process (wall time from outside, peak RSS of the process tree
from `/usr/bin/time -v`), twice: with a cold validation (`validation.cache=false`: every rule of
every table checked) and as it runs after training on the same extract (the verdict cache
filled). Throughput is eligible customers scored per second, validation included; the target
is 3,333 a second (1M subscribers in 5 minutes) in 8 GB or less. `--train` first trains and
registers the dataset's champion (single split, to save time). `--model`
scores with another dataset's champion (the 1M-subscriber data has too short a history to train
on, so it is scored with the 200k dense data's model).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from results_file import record_section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Nightly scoring at realistic density, `{}` (issue #16)"
CHURNML = str(Path(sys.executable).with_name("churnml"))


def _timed(args: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and stderr of one `churnml` run."""
    t0 = time.perf_counter()
    run = subprocess.run(
        ["/usr/bin/time", "-v", CHURNML, *args], capture_output=True, text=True, cwd=ROOT
    )
    wall = time.perf_counter() - t0
    if run.returncode != 0:
        raise SystemExit(f"churnml {' '.join(args)} exited {run.returncode}:\n{run.stderr[-3000:]}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr)
    return wall, int(rss.group(1)) / 1024 if rss else float("nan"), run.stdout + run.stderr


def _stage_times(log: str) -> str:
    """The job's own stage timings (`timing ...` lines of the scoring log), if printed."""
    found = re.findall(r"stage (\w+) done in ([0-9.]+) s", log)
    return ", ".join(f"{k} {float(v):.1f} s" for k, v in found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset_dir", type=Path)
    parser.add_argument("--name", default=None, help="data.name (default: the folder's name)")
    parser.add_argument("--train", action="store_true")
    parser.add_argument("--model", default=None, help="registered model to score with")
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    name = args.name or args.dataset_dir.name
    data = [f"data.path={args.dataset_dir}", f"data.name={name}"]
    model = [f"tracking.registered_model_name={args.model}"] if args.model else []
    if args.train:
        wall, rss, _ = _timed(["train", *data, "sampling.scheme=single_split"])
        print(f"trained in {wall:.0f} s, peak {rss:,.0f} MiB", flush=True)
    else:  # as training would: the tables pass once, so the second run finds their verdicts
        wall, _, _ = _timed(["validate", *data])
        print(f"validated in {wall:.0f} s", flush=True)

    rows = []
    for label, extra in (
        ("cold validation (validation.cache=false)", ["validation.cache=false"]),
        ("tables unchanged since they passed (after training or `churnml validate`)", []),
    ):
        wall, rss, log = _timed(["score", *data, *model, *extra])
        scored = re.search(r"Scored ([0-9,]+) customers", log)
        scored = int(scored.group(1).replace(",", "")) if scored else None
        rows.append((label, wall, rss, scored, _stage_times(log)))
        print(rows[-1], flush=True)

    lines = [
        SECTION.format(args.dataset_dir.name),
        "",
        f"{date.today()}, {platform.machine()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} at the end (other processes shared the cores). "
        f"`churnml score` on `{args.dataset_dir}`, timed from outside.",
        "",
        "| run | wall | customers scored | customers a second | peak RSS | stages |",
        "|---|---|---|---|---|---|",
    ]
    for label, wall, rss, scored, stages in rows:
        rate = f"{scored / wall:,.0f}" if scored else "?"
        count = f"{scored:,}" if scored else "?"
        lines.append(f"| {label} | {wall:.1f} s | {count} | {rate} | {rss:,.0f} MiB | {stages} |")
    if args.model:
        lines += ["", f"Scored with `{args.model}`, another dataset's champion."]
    lines += ["", "Target: 3,333 customers a second or more, in 8 GB or less.", ""]
    text = "\n".join(lines)
    print(text)
    if args.record:
        record_section(SECTION.format(args.dataset_dir.name), text)


if __name__ == "__main__":
    main()
