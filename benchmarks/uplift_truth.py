"""The uplift model against the simulator's truth, on datasets it was not developed on
(issue #19's "done when": the contact list keeps more revenue per contact than risk ranking).

Runs `churnml uplift` (MLflow in a throwaway store; without a churn champion, risk is a churn
model fitted on each split's training campaigns) on each simulated dataset and prints, on the
tested (later) campaigns: the chosen learner and the alias it got, the Qini coefficients, the
calibration slope, the true revenue kept per contact when contacting the top
`uplift.capacity_share` by the contact list's order, by the raw uplift and by risk, and the
"do not contact" share against the truth's pushed-out share.

    python -m churnml simulate simulate.seed=6061 simulate.name=telco_sim_seed6061
    python benchmarks/uplift_truth.py data/raw/telco_sim_seed6061 [more datasets] [--record]
"""

from __future__ import annotations

import argparse
import logging
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

SECTION = "## Uplift against the simulator's truth (benchmarks/uplift_truth.py)"
COLUMNS = {
    "chosen": "learner",
    "alias": "alias",
    "test_rows": "tested rows",
    "test_control_rows": "controls",
    "test_qini_chosen": "Qini learner",
    "test_qini_risk": "Qini risk",
    "calibration_slope": "slope",
    "test_true_value_per_contact_contact_list": "EUR/contact list",
    "test_true_value_per_contact_uplift": "EUR/contact uplift",
    "test_true_value_per_contact_risk": "EUR/contact risk",
    "test_worth_calling_share": "worth calling",
    "test_true_value_per_call_worth_calling": "EUR/call worth calling",
    "test_true_value_per_call_risk_same_calls": "EUR/call risk, as many",
    "test_do_not_contact_share": "do not contact",
    "test_do_not_contact_precision": "of them pushed out",
    "test_true_pushed_out_share": "truth pushed out",
    "seconds": "wall s",
}


def run_one(dataset: Path, root: str, overrides: list[str]) -> dict:
    from churnml.config import compose_config
    from churnml.uplift import run_uplift

    cfg = compose_config("uplift", [f"data.path={dataset}", f"paths.root_dir={root}", *overrides])
    started = time.perf_counter()
    result = run_uplift(cfg)
    seconds = time.perf_counter() - started
    row = {"dataset": dataset.name, "chosen": result.chosen, "alias": result.alias}
    row.update(result.metrics)
    row["test_qini_chosen"] = result.metrics[f"test_qini_{result.chosen}"]
    row["seconds"] = seconds
    return row


def _markdown(table: pd.DataFrame) -> str:
    def cell(v) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| dataset | " + " | ".join(table.columns) + " |"]
    lines.append("|---" * (len(table.columns) + 1) + "|")
    for name, row in table.iterrows():
        lines.append(f"| {name} | " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("datasets", type=Path, nargs="+")
    parser.add_argument("--record", action="store_true", help="write the table to RESULTS.md")
    parser.add_argument("--override", action="append", default=[], help="a config override")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as root:  # one store: MLflow keeps its engine open
        rows = [run_one(d, root, args.override) for d in args.datasets]
    table = pd.DataFrame(rows).set_index("dataset")
    table = table[[c for c in COLUMNS if c in table]].rename(columns=COLUMNS)
    text = _markdown(table)
    print(text)
    if args.record:
        from results_file import record_section

        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        record_section(
            SECTION,
            f"{SECTION}\n\n{stamp}, {platform.node()} ({platform.machine()}), overrides "
            f"{args.override or 'none'}. EUR/contact: true revenue kept per contact (true "
            f"uplift x 12 months of revenue) when contacting the top share of each ranking on "
            f"the tested campaigns.\n\n{text}\n",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
