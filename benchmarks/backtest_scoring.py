"""Backtest of batch scoring on the simulator (issue: scheduled batch scoring, "done when").

The default simulated dataset is cut at a date D (everything at or after it withheld); a model
is trained on the cut data and scores every customer at D; then the withheld months tell who
churned. Reported: the AUC of those scores against the training run's test AUC, and how often a
churner's main reason names the simulator's planted main cause for that customer in that month.

    python benchmarks/backtest_scoring.py [--dataset data/raw/telco_sim] [--months-withheld 2]
        [--quick] [--override sampling.scheme=single_split ...]

`--override` passes Hydra overrides to the training run (e.g. the scheme before and after
rolling evaluation); `--quick` scores once, with the default reasons only. The truth AUC at
the scoring date ranks the same customers by the simulator's true probability of leaving in
the same window: the best any model can reach.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

import mlflow
import pandas as pd

from churnml.backtest import backtest_auc, score_outcomes, withhold_after
from churnml.config import compose_config
from churnml.io import dataset_as_of
from churnml.jobs import run_scoring, run_training
from churnml.simulate.truth import TRUTH_FILE, window_probability
from churnml.tracking import load_run_table

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("backtest")
DEFAULT_METHOD = "path attributions, exact TreeSHAP for the top of the call lists (default)"
REASON_METHODS = {
    DEFAULT_METHOD: [],
    "path attributions for everyone": ["scoring.exact_reasons_rows=0"],
    "exact TreeSHAP for everyone": ["scoring.attribution=treeshap"],
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", type=Path, default=ROOT / "data/raw/telco_sim")
    parser.add_argument("--months-withheld", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="default reasons only")
    parser.add_argument("--override", action="append", default=[], help="training override")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    as_of = dataset_as_of(args.dataset)
    date = (as_of - pd.DateOffset(months=args.months_withheld)).to_period("M").to_timestamp()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cut = withhold_after(args.dataset, root / "cut", date)
        # The true probabilities only grade the model (test_truth_roc_auc); it never reads them.
        shutil.copytree(args.dataset / TRUTH_FILE.parent, cut / TRUTH_FILE.parent)
        started = time.perf_counter()
        trained = run_training(
            compose_config(
                "train",
                [
                    f"paths.root_dir={root}",
                    f"data.path={cut}",
                    "data.name=backtest",
                    *args.override,
                ],
            )
        )
        train_s = time.perf_counter() - started
        scores_by_method = {}
        methods = {DEFAULT_METHOD: []} if args.quick else REASON_METHODS
        for method, overrides in methods.items():
            started = time.perf_counter()
            scored = run_scoring(
                compose_config(
                    "score",
                    [
                        f"paths.root_dir={root}",
                        f"data.path={cut}",
                        "data.name=backtest",
                        f"scoring.output_dir={root}/scores/{len(scores_by_method)}",
                        *overrides,
                    ],
                )
            )
            score_s = time.perf_counter() - started
            scores_by_method[method] = (pd.read_parquet(scored.scores_path), score_s)
        scores, score_s = scores_by_method[DEFAULT_METHOD]
        horizon = int(
            mlflow.MlflowClient().get_run(trained.run_id).data.params["label.horizon_days"]
        )
        families = load_run_table(trained.run_id, "drivers/families.parquet")
    outcomes = score_outcomes(scores, args.dataset, horizon)
    auc = backtest_auc(outcomes)
    spine = pd.DataFrame({"customer_id": outcomes["customer_id"], "cutoff": date})
    true_p = window_probability(args.dataset, spine, horizon).to_numpy()
    known = ~pd.isna(true_p)
    truth_auc = backtest_auc(outcomes[known].assign(churn_probability=true_p[known]))
    truth_all = pd.read_parquet(args.dataset / TRUTH_FILE)
    recent = pd.to_datetime(truth_all["month"]).between(date - pd.DateOffset(months=6), date)
    hazards = truth_all.loc[recent].filter(like="hazard_").mean()
    hazards.index = hazards.index.str.removeprefix("hazard_")
    causes = pd.concat(
        [
            families.set_index("cause_family")["share_of_total"].rename("report"),
            (hazards / hazards.sum()).rename("planted"),
        ],
        axis=1,
    ).fillna(0.0)
    spearman = causes["report"].rank().corr(causes["planted"].rank())
    month = pd.to_datetime(truth_all["month"]) == date
    truth = truth_all.loc[month].set_index("customer_id")["main_cause"]
    agreement = {}
    for method, (method_scores, method_s) in scores_by_method.items():
        churners = score_outcomes(method_scores, args.dataset, horizon).query("churned").copy()
        churners["planted"] = churners["customer_id"].map(truth)
        agreement[method] = ((churners["main_cause"] == churners["planted"]).mean(), method_s)
    churners = outcomes[outcomes["churned"]].copy()
    churners["planted"] = churners["customer_id"].map(truth)
    by_chance = (churners["planted"].value_counts(normalize=True) ** 2).sum()
    top = churners.groupby("planted")["main_cause"].agg(lambda s: s.value_counts().index[0])
    print(f"\n## Scoring backtest on {args.dataset.name} ({pd.Timestamp.now():%Y-%m-%d})\n")
    print(
        f"- data withheld from {date.date()} ({args.months_withheld} months); "
        f"trained on the cut data in {train_s:.0f} s, scored {len(scores):,} customers in "
        f"{score_s:.0f} s"
    )
    print(
        f"- training test AUC {trained.metrics['test_roc_auc']:.3f} (simulator truth "
        f"{trained.metrics.get('test_truth_roc_auc', float('nan')):.3f}); backtest AUC of "
        f"the scores at {date.date()} on the next {horizon} days: {auc:.3f} "
        f"({int(outcomes['churned'].sum()):,} churners)"
    )
    print(
        f"- the simulator's true probabilities rank the same customers with AUC "
        f"{truth_auc:.3f} (gap {truth_auc - auc:.3f}); mean predicted probability "
        f"{outcomes['churn_probability'].mean():.4f} vs realised rate "
        f"{outcomes['churned'].mean():.4f}; training overrides: "
        f"{' '.join(args.override) or 'none'}; test AUC std over folds "
        f"{trained.metrics.get('test_roc_auc_std', float('nan')):.3f}"
    )
    print(
        f"- churners whose main reason is the simulator's planted main cause "
        f"(chance agreement {by_chance:.1%}), by how the reasons were computed:"
    )
    for method, (agree, method_s) in agreement.items():
        print(f"  - {method}: {agree:.1%} (scoring {method_s:.0f} s)")
    print(
        "- most frequent main reason per planted cause: "
        + "; ".join(f"{k} -> {v}" for k, v in top.items())
    )
    print(
        f"- cause families in the training report vs the simulator's planted hazard shares "
        f"(6 months to {date.date()}; Spearman rank correlation {spearman:.2f}):\n"
    )
    print("| cause family | report share | planted share |\n|---|---|---|")
    for name, row in causes.sort_values("planted", ascending=False).iterrows():
        print(f"| {name} | {row['report']:.1%} | {row['planted']:.1%} |")


if __name__ == "__main__":
    main()
